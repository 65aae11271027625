package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// runAPIServer starts an embedded etcd, then kube-apiserver configured for tests, and
// returns the process exit code once the apiserver stops (SIGTERM/SIGINT).
func runAPIServer(args []string) int {
	fs := flag.NewFlagSet("apiserver", flag.ContinueOnError)
	dir := fs.String("dir", "", "working directory for etcd data and credentials (required)")
	port := fs.Int("port", 0, "kube-apiserver secure port on 127.0.0.1 (0: pick a free one)")
	etcdClient := fs.Int("etcd-client-port", 0, "embedded etcd client port (0: pick a free one)")
	etcdPeer := fs.Int("etcd-peer-port", 0, "embedded etcd peer port (0: pick a free one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "apiserver: --dir is required")
		return 2
	}
	for _, p := range []*int{port, etcdClient, etcdPeer} {
		if *p == 0 {
			free, err := freePort()
			if err != nil {
				fmt.Fprintln(os.Stderr, "apiserver:", err)
				return 1
			}
			*p = free
		}
	}

	creds, err := writeCredentials(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver: credentials:", err)
		return 1
	}

	etcd, err := startEtcd(filepath.Join(*dir, "etcd"), *etcdClient, *etcdPeer)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver: etcd:", err)
		return 1
	}
	defer etcd.Close()

	server := fmt.Sprintf("https://127.0.0.1:%d", *port)
	flags := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", *etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(*port),
		"--cert-dir=" + filepath.Join(*dir, "certs"),
		"--tls-cert-file=" + creds.servingCert,
		"--tls-private-key-file=" + creds.servingKey,
		"--client-ca-file=" + creds.caCert,
		"--service-account-key-file=" + creds.saPublic,
		"--service-account-signing-key-file=" + creds.saPrivate,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--token-auth-file=" + creds.tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		// ServiceAccount: pods need no token volume. TaintNodesByCondition: it taints new nodes
		// not-ready and only the node-lifecycle controller (not run) would lift the taint.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--enable-priority-and-fairness=false",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	}
	flags = append(flags, fs.Args()...) // pass-through, after "--"

	go announceReady(server, creds.caCert)

	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs(flags)
	return cli.Run(cmd)
}

func startEtcd(dataDir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "tessera-test"
	cfg.Dir = dataDir
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true // test data lives in a temp dir; durability buys nothing
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 60s")
	}
}

// announceReady polls /readyz with the generated CA and prints the ready line once.
func announceReady(server, caFile string) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(os.Stdout, "TESSERA-APISERVER-READY %s\n", server)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "apiserver: /readyz not ok after 5m")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
