// Command etcd is upstream's etcd server, built from its Go module as a test backend
// (scripts/k8s-binaries); etcd's own server/main.go is this one call.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
