// Command coredns is upstream's CoreDNS with only the plugins svcplane's DNS tests need
// (kubernetes; bind, so that tests listen on loopback only; errors, for its logs), built from its
// Go module as a test oracle (scripts/coredns). CoreDNS's own coredns.go is this call plus a blank
// import of every plugin; importing fewer keeps the build off the cloud SDKs that the other
// plugins pull in. The kubernetes plugin's code is the module's, unchanged.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func main() { coremain.Run() }
