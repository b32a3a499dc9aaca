// Package kubetest starts a real kube-apiserver and etcd (built by `make
// kube-bins` into bin/kube, or found in $IBU_KUBE_BIN) on loopback ports for
// tests that talk to Kubernetes with client-go. Start one server per test
// package in TestMain with Main, give each test its own Namespace, and
// install CRDs once with InstallCRDs.
//
//	var kube *kubetest.Server
//
//	func TestMain(m *testing.M) {
//		os.Exit(kubetest.Main(m, func(ctx context.Context, s *kubetest.Server) error {
//			kube = s
//			return s.InstallCRDs(ctx, crdYAML)
//		}))
//	}
//
// Start(t) gives a test a server of its own when it needs isolation. The
// server has no controllers: namespaces never finish deleting, Deployments
// get no Pods, and nothing garbage-collects.
package kubetest
