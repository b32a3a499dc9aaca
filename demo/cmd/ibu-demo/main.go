// Command ibu-demo runs the demo (`make demo`); see package demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"ibu.dev/demo/demo"
)

func main() {
	cfg := demo.Flags(flag.CommandLine)
	flag.Parse()
	cfg.Out, cfg.Err = os.Stdout, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, *cfg); err != nil {
		fmt.Fprintln(os.Stderr, "ibu-demo:", err)
		if errors.Is(err, demo.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
