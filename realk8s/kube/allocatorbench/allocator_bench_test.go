// Package allocatorbench times upstream's ClusterIP and NodePort allocators (k8s.io/kubernetes
// v1.34.10, pkg/registry/core/service) on exactly the cases allocator/benches/vs_upstream.rs
// times svcplane's on, so that scripts/bench-vs-upstream can print the two side by side (issue
// 13, item 2). Only test code, and no product code of ours: it calls upstream's packages.
//
// Two upstream ClusterIP allocators are measured:
//
//   - bitmap: ipallocator.NewInMemory, the allocator kube-apiserver used for ClusterIPs before
//     MultiCIDRServiceAllocator (and still the shape of the NodePort allocator,
//     portallocator.NewInMemory). It caps an IPv6 range at 65,536 addresses.
//   - ipaddress: ipallocator.NewIPAllocator, the one kube-apiserver 1.34 actually allocates
//     ClusterIPs with (MultiCIDRServiceAllocator is GA and locked on in 1.34, and
//     DisableAllocatorDualWrite defaults to true, so no bitmap is written). It finds a free
//     address in an IPAddress informer cache and creates an IPAddress object. As upstream's own
//     BenchmarkIPAllocatorAllocateNext* does, it runs against a fake clientset whose create and
//     delete reactors update the informer's store, so no API server is in the loop: what is
//     timed is the search plus the client-side create through client-go's fake object tracker.
//
// Every case follows the same protocol as the Rust side: fill the range to the stated fraction
// with the free addresses scattered at random (untimed), then time operations in batches (of 100,
// or half the free values when fewer are free) and undo each batch untimed, so the fill level
// stays where the case put it.
package allocatorbench

import (
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/informers"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/registry/core/service/ipallocator"
	"k8s.io/kubernetes/pkg/registry/core/service/portallocator"
)

func init() {
	// The allocators log every failed create or delete at info level; a benchmark of a full
	// range would print thousands of lines.
	klog.InitFlags(flag.NewFlagSet("klog", flag.ContinueOnError))
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
}

// batchFor is the number of allocations timed between two untimed undos: 100, or half the free
// values when fewer than 200 are free (a batch must never run the range out: at 99 % the
// NodePort range has 28 free ports).
func batchFor(free int) int {
	return max(1, min(100, free/2))
}

// The ranges of the cases (the same on the Rust side).
const (
	ipv4Range   = "10.96.0.0/12"
	ipv6Small   = "fd00::/112"
	ipv6Large   = "fd00::/64"
	ipv6Million = 1_000_000
)

// ipAllocator is what both upstream ClusterIP allocators offer.
type ipAllocator interface {
	Allocate(net.IP) error
	AllocateNext() (net.IP, error)
	Release(net.IP) error
}

// usable lists a range's allocatable addresses as upstream counts them: the network address
// excluded, and for IPv4 the broadcast address too.
func usable(cidr string) []netip.Addr {
	prefix := netip.MustParsePrefix(cidr)
	bits := prefix.Addr().BitLen() - prefix.Bits()
	if bits > 20 {
		panic("usable: range too large to list: " + cidr)
	}
	n := 1 << bits
	last := n - 1
	if prefix.Addr().Is4() {
		last = n - 2
	}
	out := make([]netip.Addr, 0, last)
	a := prefix.Masked().Addr().Next()
	for i := 1; i <= last; i++ {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

// scatter returns the addresses to hold so that `fraction` of them is used, chosen at random,
// and the rest (the free ones), in random order.
func scatter(all []netip.Addr, fraction float64, seed int64) (used, free []netip.Addr) {
	shuffled := append([]netip.Addr(nil), all...)
	rand.New(rand.NewSource(seed)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	k := int(fraction * float64(len(shuffled)))
	return shuffled[:k], shuffled[k:]
}

// randomV6 returns n distinct random addresses of a /64, at offsets 256 and above (as the Rust
// side draws them).
func randomV6(cidr string, n int, seed int64) []netip.Addr {
	prefix := netip.MustParsePrefix(cidr).Masked().Addr().As16()
	rng := rand.New(rand.NewSource(seed))
	seen := make(map[uint64]bool, n)
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		offset := 256 + rng.Uint64()%(^uint64(0)-257)
		if seen[offset] {
			continue
		}
		seen[offset] = true
		b := prefix
		for i := 0; i < 8; i++ {
			b[15-i] = byte(offset >> (8 * i))
		}
		out = append(out, netip.AddrFrom16(b))
	}
	return out
}

func mustCIDR(cidr string) *net.IPNet {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		panic(err)
	}
	return n
}

// newBitmap is ipallocator.NewInMemory with `held` allocated.
func newBitmap(b *testing.B, cidr string, held []netip.Addr) ipAllocator {
	r, err := ipallocator.NewInMemory(mustCIDR(cidr))
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range held {
		if err := r.Allocate(a.AsSlice()); err != nil {
			b.Fatalf("fill %s: %v", a, err)
		}
	}
	return r
}

// newIPAddress is ipallocator.NewIPAllocator over a fake clientset, wired as upstream's
// newTestAllocator (ipallocator_test.go) wires it, with `held` already in the informer's store
// as kube-apiserver's IPAddress informer would hold them.
func newIPAddress(b *testing.B, cidr string, held []netip.Addr) ipAllocator {
	client := fake.NewSimpleClientset()
	factory := informers.NewSharedInformerFactory(client, 0*time.Second)
	ipInformer := factory.Networking().V1().IPAddresses()
	store := ipInformer.Informer().GetIndexer()
	client.PrependReactor("create", "ipaddresses", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ip := action.(k8stesting.CreateAction).GetObject().(*networkingv1.IPAddress)
		if _, exists, _ := store.GetByKey(ip.Name); exists {
			return true, nil, fmt.Errorf("ip %s already exists", ip.Name)
		}
		ip.Generation = 1
		return false, ip, store.Add(ip)
	})
	// A delete of an address in the store succeeds, as the API server's would: the filled
	// addresses were put in the store directly and are not in the fake's object tracker
	// (upstream's newTestAllocator passes every delete on to the tracker).
	client.PrependReactor("delete", "ipaddresses", func(action k8stesting.Action) (bool, runtime.Object, error) {
		name := action.(k8stesting.DeleteAction).GetName()
		obj, exists, err := store.GetByKey(name)
		if !exists || err != nil {
			return false, nil, nil
		}
		ip := obj.(*networkingv1.IPAddress)
		_ = client.Tracker().Delete(networkingv1.SchemeGroupVersion.WithResource("ipaddresses"), "", name)
		return true, ip, store.Delete(ip)
	})
	family := "IPv4"
	if netip.MustParsePrefix(cidr).Addr().Is6() {
		family = "IPv6"
	}
	for _, a := range held {
		if err := store.Add(heldAddress(a.String(), family)); err != nil {
			b.Fatal(err)
		}
	}
	r, err := ipallocator.NewIPAllocator(mustCIDR(cidr), client.NetworkingV1(), syncedInformer{ipInformer})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// syncedInformer is the IPAddress informer with HasSynced true: it is never started (its store
// is filled and kept by the reactors above), as upstream's newTestAllocator never starts it and
// sets the allocator's ipAddressSynced to true.
type syncedInformer struct {
	networkinginformers.IPAddressInformer
}

func (s syncedInformer) Informer() cache.SharedIndexInformer {
	return syncedIndexInformer{s.IPAddressInformer.Informer()}
}

type syncedIndexInformer struct {
	cache.SharedIndexInformer
}

func (syncedIndexInformer) HasSynced() bool { return true }

func heldAddress(name, family string) *networkingv1.IPAddress {
	return &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				networkingv1.LabelIPAddressFamily: family,
				networkingv1.LabelManagedBy:       ipallocator.ControllerName,
			},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{
			Resource: "services", Namespace: "default", Name: "held",
		}},
	}
}

// timeNextFree times AllocateNext in batches of `batch`, releasing each batch untimed.
func timeNextFree(b *testing.B, a ipAllocator, batch int) {
	got := make([]net.IP, 0, batch)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		b.StartTimer()
		for i := 0; i < n; i++ {
			ip, err := a.AllocateNext()
			if err != nil {
				b.Fatalf("AllocateNext: %v", err)
			}
			got = append(got, ip)
		}
		b.StopTimer()
		for _, ip := range got {
			_ = a.Release(ip)
		}
		got = got[:0]
		done += n
	}
}

// timeAllocateRandom times Allocate of given free addresses in random order, in batches,
// releasing each batch untimed.
func timeAllocateRandom(b *testing.B, a ipAllocator, free []netip.Addr) {
	batch := batchFor(len(free))
	next := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		start := next
		b.StartTimer()
		for i := 0; i < n; i++ {
			if err := a.Allocate(free[next].AsSlice()); err != nil {
				b.Fatalf("Allocate %s: %v", free[next], err)
			}
			next = (next + 1) % len(free)
		}
		b.StopTimer()
		for i := 0; i < n; i++ {
			_ = a.Release(free[(start+i)%len(free)].AsSlice())
		}
		done += n
	}
}

// timeRelease times Release of held addresses in batches, allocating each batch back untimed.
func timeRelease(b *testing.B, a ipAllocator, held []netip.Addr) {
	batch := batchFor(len(held))
	next := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		start := next
		b.StartTimer()
		for i := 0; i < n; i++ {
			if err := a.Release(held[next].AsSlice()); err != nil {
				b.Fatalf("Release %s: %v", held[next], err)
			}
			next = (next + 1) % len(held)
		}
		b.StopTimer()
		for i := 0; i < n; i++ {
			if err := a.Allocate(held[(start+i)%len(held)].AsSlice()); err != nil {
				b.Fatalf("re-Allocate: %v", err)
			}
		}
		done += n
	}
}

// A case's allocator and addresses are built once per process and reused by every b.N round
// (filling a /12 takes seconds).
type fixture struct {
	alloc      ipAllocator
	held, free []netip.Addr
	port       *portallocator.PortAllocator
	// batch: batchFor the free count.
	batch int
}

var fixtures = map[string]*fixture{}

func fixtureFor(b *testing.B, key string, build func() *fixture) *fixture {
	if f, ok := fixtures[key]; ok {
		return f
	}
	b.StopTimer()
	f := build()
	fixtures[key] = f
	return f
}

var ipv4All []netip.Addr

func ipv4Fill(b *testing.B, kind string, fraction float64) *fixture {
	return fixtureFor(b, fmt.Sprintf("%s/ipv4/%v", kind, fraction), func() *fixture {
		if ipv4All == nil {
			ipv4All = usable(ipv4Range)
		}
		held, free := scatter(ipv4All, fraction, 1)
		return &fixture{alloc: build(b, kind, ipv4Range, held), held: held, free: free, batch: batchFor(len(free))}
	})
}

func build(b *testing.B, kind, cidr string, held []netip.Addr) ipAllocator {
	if kind == "bitmap" {
		return newBitmap(b, cidr, held)
	}
	return newIPAddress(b, cidr, held)
}

var ipKinds = []string{"bitmap", "ipaddress"}

// skipIfShort skips the IPAddress allocator's filled cases under -test.short (the smoke run):
// each of their allocations lists every IPAddress in the informer's store, so they take seconds.
func skipIfShort(b *testing.B, kind string) {
	if testing.Short() && kind == "ipaddress" {
		b.Skip("the IPAddress allocator's filled ranges are left out of -short runs")
	}
}

// BenchmarkClusterIP: the ClusterIP cases, each under both upstream allocators (the sub-benchmark
// name is case/allocator). The fixtures of one fill level are dropped before the next is built
// (a /12 of IPAddress objects takes about a GiB).
func BenchmarkClusterIP(b *testing.B) {
	for _, kind := range ipKinds {
		for _, pct := range []int{0, 50, 99} {
			b.Run(fmt.Sprintf("ipv4_12_next_free_%dpct/%s", pct, kind), func(b *testing.B) {
				if pct > 0 {
					skipIfShort(b, kind)
				}
				f := ipv4Fill(b, kind, float64(pct)/100)
				timeNextFree(b, f.alloc, f.batch)
			})
			if pct == 50 {
				b.Run("ipv4_12_allocate_random_50pct/"+kind, func(b *testing.B) {
					skipIfShort(b, kind)
					f := ipv4Fill(b, kind, 0.5)
					timeAllocateRandom(b, f.alloc, f.free)
				})
				b.Run("ipv4_12_release_50pct/"+kind, func(b *testing.B) {
					skipIfShort(b, kind)
					f := ipv4Fill(b, kind, 0.5)
					timeRelease(b, f.alloc, f.held)
				})
			}
			clear(fixtures)
		}
		b.Run("ipv6_112_next_free_50pct/"+kind, func(b *testing.B) {
			skipIfShort(b, kind)
			f := fixtureFor(b, kind+"/ipv6_112", func() *fixture {
				held, free := scatter(usable(ipv6Small), 0.5, 1)
				return &fixture{alloc: build(b, kind, ipv6Small, held), held: held, free: free, batch: batchFor(len(free))}
			})
			timeNextFree(b, f.alloc, f.batch)
		})
		clear(fixtures)
	}
	// The bitmap allocator cannot hold a /64 (it silently serves only its first 65,536
	// addresses), so this case is the IPAddress allocator's alone.
	b.Run("ipv6_64_next_free_1m/ipaddress", func(b *testing.B) {
		skipIfShort(b, "ipaddress")
		f := fixtureFor(b, "ipaddress/ipv6_64", func() *fixture {
			held := randomV6(ipv6Large, ipv6Million, 9)
			return &fixture{alloc: newIPAddress(b, ipv6Large, held), held: held, batch: 100}
		})
		timeNextFree(b, f.alloc, f.batch)
	})
	clear(fixtures)
}

// BenchmarkNodePort: next free NodePort in the default range 30000-32767 at 0, 50 and 99 % full
// (portallocator.NewInMemory, the bitmap kube-apiserver 1.34 allocates NodePorts with).
func BenchmarkNodePort(b *testing.B) {
	pr, err := utilnet.ParsePortRange("30000-32767")
	if err != nil {
		b.Fatal(err)
	}
	for _, pct := range []int{0, 50, 99} {
		b.Run(fmt.Sprintf("node_port_next_free_%dpct/bitmap", pct), func(b *testing.B) {
			f := fixtureFor(b, fmt.Sprintf("port/%d", pct), func() *fixture {
				p, err := portallocator.NewInMemory(*pr)
				if err != nil {
					b.Fatal(err)
				}
				ports := make([]int, 0, pr.Size)
				for i := 0; i < pr.Size; i++ {
					ports = append(ports, pr.Base+i)
				}
				rand.New(rand.NewSource(2)).Shuffle(len(ports), func(i, j int) {
					ports[i], ports[j] = ports[j], ports[i]
				})
				for _, port := range ports[:int(float64(pct)/100*float64(len(ports)))] {
					if err := p.Allocate(port); err != nil {
						b.Fatal(err)
					}
				}
				return &fixture{port: p, batch: batchFor(p.Free())}
			})
			batch := f.batch
			got := make([]int, 0, batch)
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				b.StartTimer()
				for i := 0; i < n; i++ {
					port, err := f.port.AllocateNext()
					if err != nil {
						b.Fatalf("AllocateNext: %v", err)
					}
					got = append(got, port)
				}
				b.StopTimer()
				for _, port := range got {
					_ = f.port.Release(port)
				}
				got = got[:0]
				done += n
			}
		})
	}
}
