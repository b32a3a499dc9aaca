// Command ibuctl is the user's CLI for ibu; see package ibuctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"ibu.dev/cli/ibuctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := ibuctl.Run(ctx, ibuctl.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	switch {
	case err == nil:
	case errors.Is(err, ibuctl.ErrUsage):
		fmt.Fprintln(os.Stderr, "ibuctl:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ibuctl:", err)
		os.Exit(1)
	}
}
