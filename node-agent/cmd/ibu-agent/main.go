// Command ibu-agent is the ibu node agent; see package agentcmd.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"ibu.dev/node-agent/agentcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := agentcmd.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	for line := range strings.Lines(err.Error()) {
		fmt.Fprint(os.Stderr, "ibu-agent: ", strings.TrimRight(line, "\n"), "\n")
	}
	if errors.Is(err, agentcmd.ErrUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}
