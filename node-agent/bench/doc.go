// Package bench holds the node agent's performance figures: benchmarks that
// print numbers and ratios, never timed tests that assert a duration.
//
//   - BenchmarkPrepRealOstree runs the agent's Prep on the real ostree
//     backend (a test sysroot, a ~50 MB seed commit pulled from an
//     in-process registry) and, in the same run, the bare ostree commands
//     doing the same work (untar, pull-local, os-init, deploy), and prints
//     both times, the agent's time per step and per ostree command, and
//     "ratio: <agent ÷ bare>".
//   - BenchmarkFleetSim runs a fleet of simulated spokes (1,000 by default,
//     IBU_BENCH_AGENTS to change it; see also IBU_BENCH_CONNS and
//     IBU_BENCH_DIR) in one process against one embedded JetStream and one
//     registry through Prep, Upgrade and Finalize, and prints the wall time
//     per phase, the events published and the memory per agent.
//
// Each iteration is one whole run, so run them once:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/
//
// Plain `go test ./bench/` runs only quick smoke tests of the same helpers
// (three agents; a tiny ostree tree), in about a second. Like the rest of
// the node agent's tests they need the ostree CLI (.ci/run installs it).
package bench
