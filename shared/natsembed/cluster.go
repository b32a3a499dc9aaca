package natsembed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cluster is an in-process JetStream cluster of n nodes on loopback. Node i
// is named "n<i>" and stores its data in <dir>/n<i>.
type Cluster struct {
	name  string
	nodes []*Server
}

// ClusterOption adjusts the Config of node i (logger, payload limit, ...)
// before the cluster starts. Ports, names, store directories and routes are
// set by StartCluster and should be left alone.
type ClusterOption func(i int, c *Config)

// StartCluster starts an n-node JetStream cluster with cluster routes on
// loopback, distinct server names and store directories under dir, and waits
// until the JetStream meta group has a leader.
func StartCluster(ctx context.Context, dir string, n int, opts ...ClusterOption) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("natsembed: cluster needs at least one node")
	}
	// Every node lists every other node as a route, so a restarted node
	// finds its peers again; that needs the route ports up front.
	ports, err := freePorts(n)
	if err != nil {
		return nil, fmt.Errorf("natsembed: allocate cluster ports: %w", err)
	}
	c := &Cluster{name: "ibu-test"}
	cfgs := make([]Config, n)
	for i := range cfgs {
		cfg := Config{
			StoreDir:    filepath.Join(dir, "n"+strconv.Itoa(i)),
			ServerName:  "n" + strconv.Itoa(i),
			ClusterName: c.name,
			ClusterPort: ports[i],
		}
		for j, p := range ports {
			if j != i {
				cfg.Routes = append(cfg.Routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
			}
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		cfgs[i] = cfg
	}
	// Start the nodes concurrently: a clustered node's JetStream waits for
	// its peers.
	type result struct {
		i   int
		s   *Server
		err error
	}
	ch := make(chan result, n)
	for i, cfg := range cfgs {
		go func() {
			s, err := Start(ctx, cfg)
			ch <- result{i, s, err}
		}()
	}
	c.nodes = make([]*Server, n)
	var errs []error
	for range n {
		r := <-ch
		c.nodes[r.i] = r.s
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Shutdown()
		return nil, err
	}
	if err := c.WaitMetaLeader(ctx); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts finds n free TCP ports on loopback. Another process could take
// one before the cluster binds it; that is acceptable for tests.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// WaitMetaLeader waits until a running node is the JetStream meta leader,
// the leader sees every running node as an online JetStream peer, and every
// running node is current with the meta group: then streams with as many
// replicas as running nodes can be placed.
func (c *Cluster) WaitMetaLeader(ctx context.Context) error {
	deadline := time.Now().Add(DefaultReadyTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	err := poll(ctx, deadline, func() bool {
		running, peers := 0, -1
		for _, s := range c.nodes {
			ns := s.NATS()
			if ns == nil || !ns.Running() {
				continue
			}
			running++
			if !ns.JetStreamIsCurrent() {
				return false
			}
			if ns.JetStreamIsLeader() {
				peers = len(ns.JetStreamClusterPeers())
			}
		}
		return peers == running
	})
	if err != nil {
		return fmt.Errorf("natsembed: waiting for a JetStream meta leader and its peers: %w", err)
	}
	return nil
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i.
func (c *Cluster) Node(i int) *Server { return c.nodes[i] }

// Index returns the index of the node with the given server name, or -1.
func (c *Cluster) Index(name string) int {
	for i, s := range c.nodes {
		if s.Name() == name {
			return i
		}
	}
	return -1
}

// URLs returns the client URL of every node.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		out[i] = s.URL()
	}
	return out
}

// URL returns all client URLs joined with commas, as nats.Connect accepts.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Stop shuts node i down and waits for it.
func (c *Cluster) Stop(i int) { c.nodes[i].Shutdown() }

// Restart brings node i back on its store directory and ports.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.nodes[i].Restart(ctx); err != nil {
		return fmt.Errorf("natsembed: restart node %d: %w", i, err)
	}
	return nil
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for _, s := range c.nodes {
		if s != nil {
			s.Shutdown()
		}
	}
}
