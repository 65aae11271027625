// Command tessera-k8s is a multi-call binary for Tessera's integration tests: a real
// kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app) over an embedded etcd, and a
// real kube-scheduler and kube-controller-manager, built from one Go module so they share one compile.
//
//	tessera-k8s apiserver --dir DIR --port PORT [--etcd-client-port P --etcd-peer-port P] [-- extra kube-apiserver flags]
//	tessera-k8s scheduler [kube-scheduler flags]
//	tessera-k8s controller-manager [kube-controller-manager flags]
//
// apiserver writes DIR/ca.crt, DIR/admin.token and the other credentials it generates,
// then prints "TESSERA-APISERVER-READY https://127.0.0.1:PORT" once /readyz answers ok.
package main

import (
	"fmt"
	"os"

	_ "time/tzdata" // for timeZone support in CronJob

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tessera-k8s apiserver|scheduler|controller-manager [flags]")
		os.Exit(2)
	}
	sub, rest := os.Args[1], os.Args[2:]
	switch sub {
	case "apiserver":
		os.Exit(runAPIServer(rest))
	case "scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(rest)
		os.Exit(cli.Run(cmd))
	case "controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(rest)
		os.Exit(cli.Run(cmd))
	default:
		fmt.Fprintf(os.Stderr, "tessera-k8s: unknown subcommand %q\n", sub)
		os.Exit(2)
	}
}
