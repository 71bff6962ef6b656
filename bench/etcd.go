package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/aspen-dev/aspen/internal/bench"
)

// etcdCluster is n embedded etcd members in this process, on 127.0.0.1,
// with etcd's defaults (fsync on).
type etcdCluster struct {
	members   []*embed.Etcd
	endpoints []string
}

// startEtcd starts an n-member cluster and waits until it serves.
func startEtcd(ctx context.Context, dir string, n int) (_ *etcdCluster, err error) {
	c := &etcdCluster{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	clientURLs, peerURLs := make([]url.URL, n), make([]url.URL, n)
	var initial []string
	for i := range n {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		clientURLs[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp)}
		peerURLs[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)}
		initial = append(initial, fmt.Sprintf("etcd%d=%s", i+1, peerURLs[i].String()))
		c.endpoints = append(c.endpoints, clientURLs[i].String())
	}
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("etcd%d", i+1)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cfg.ListenClientUrls = []url.URL{clientURLs[i]}
		cfg.AdvertiseClientUrls = []url.URL{clientURLs[i]}
		cfg.ListenPeerUrls = []url.URL{peerURLs[i]}
		cfg.AdvertisePeerUrls = []url.URL{peerURLs[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "bench"
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			return nil, fmt.Errorf("starting etcd member %d: %w", i+1, err)
		}
		c.members = append(c.members, e)
	}
	timeout := time.After(60 * time.Second)
	for i, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			return nil, fmt.Errorf("etcd member %d: %w", i+1, err)
		case <-timeout:
			return nil, fmt.Errorf("etcd member %d not ready after 60s", i+1)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// freePort returns a TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dial opens n clientv3 clients, each over every member's endpoint.
func (c *etcdCluster) dial(n int) ([]bench.Conn, func(), error) {
	var clients []*clientv3.Client
	closeAll := func() {
		for _, cl := range clients {
			cl.Close()
		}
	}
	conns := make([]bench.Conn, 0, n)
	for range n {
		cl, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, cl)
		conns = append(conns, etcdConn{cl})
	}
	return conns, closeAll, nil
}

func (c *etcdCluster) close() {
	for i := len(c.members) - 1; i >= 0; i-- {
		c.members[i].Close()
	}
}

// etcdConn is bench.Conn over clientv3: Put, Get (WithSerializable for
// stale reads), Txn for CAS and batches.
type etcdConn struct{ c *clientv3.Client }

var _ bench.Conn = etcdConn{}

func readOpts(stale bool, more ...clientv3.OpOption) []clientv3.OpOption {
	if stale {
		more = append(more, clientv3.WithSerializable())
	}
	return more
}

func (e etcdConn) Put(ctx context.Context, key, value []byte) error {
	_, err := e.c.Put(ctx, string(key), string(value))
	return err
}

func (e etcdConn) Get(ctx context.Context, key []byte, stale bool) error {
	_, err := e.c.Get(ctx, string(key), readOpts(stale)...)
	return err
}

func (e etcdConn) CAS(ctx context.Context, key, expected, value []byte) (bool, []byte, error) {
	k := string(key)
	resp, err := e.c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", string(expected))).
		Then(clientv3.OpPut(k, string(value))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return false, nil, err
	}
	if resp.Succeeded {
		return true, nil, nil
	}
	if len(resp.Responses) > 0 {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return false, kvs[0].Value, nil
		}
	}
	return false, nil, nil
}

func (e etcdConn) Scan(ctx context.Context, prefix []byte, limit int, stale bool) (int, error) {
	resp, err := e.c.Get(ctx, string(prefix), readOpts(stale, clientv3.WithPrefix(), clientv3.WithLimit(int64(limit)))...)
	if err != nil {
		return 0, err
	}
	return len(resp.Kvs), nil
}

func (e etcdConn) BatchPut(ctx context.Context, keys, values [][]byte) error {
	ops := make([]clientv3.Op, len(keys))
	for i := range keys {
		ops[i] = clientv3.OpPut(string(keys[i]), string(values[i]))
	}
	_, err := e.c.Txn(ctx).Then(ops...).Commit()
	return err
}
