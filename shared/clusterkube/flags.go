package clusterkube

import (
	"flag"
	"strconv"
)

// Flags registers the cluster-registry flags shared by the services that
// talk to spokes' APIs, each defaulting to its environment variable read
// through getenv, and returns the Spec they fill once fs is parsed. The
// Helm chart sets IBU_KUBECONFIG_NAMESPACE (the namespace its Role lets the
// service read Secrets in), which selects the hub-Secrets registry.
func Flags(fs *flag.FlagSet, getenv func(string) string) *Spec {
	s := &Spec{}
	fs.StringVar(&s.Dir, "kubeconfig-dir", getenv("IBU_KUBECONFIG_DIR"), "directory of <cluster>.kubeconfig files, dev ($IBU_KUBECONFIG_DIR)")
	ns := getenv("IBU_KUBECONFIG_NAMESPACE")
	secrets, _ := strconv.ParseBool(getenv("IBU_KUBECONFIG_SECRETS"))
	fs.BoolVar(&s.Secrets, "kubeconfig-secrets", secrets || ns != "", "read each cluster's kubeconfig from a Secret in the hub's API ($IBU_KUBECONFIG_SECRETS; implied by $IBU_KUBECONFIG_NAMESPACE)")
	fs.StringVar(&s.HubKubeconfig, "hub-kubeconfig", getenv("KUBECONFIG"), "the hub's kubeconfig for --kubeconfig-secrets (default in-cluster) ($KUBECONFIG)")
	fs.StringVar(&s.SecretNamespace, "secret-namespace", ns, "namespace of the kubeconfig Secrets (default: the cluster id) ($IBU_KUBECONFIG_NAMESPACE)")
	name := getenv("IBU_KUBECONFIG_SECRET_NAME")
	if name == "" {
		name = "%s-admin-kubeconfig"
	}
	fs.StringVar(&s.SecretNameFormat, "secret-name", name, "kubeconfig Secret name, %s is the cluster id ($IBU_KUBECONFIG_SECRET_NAME)")
	fs.StringVar(&s.LocalCluster, "local-cluster", getenv("IBU_CLUSTER_ID"), "serve only this cluster, with in-cluster credentials (spoke placement) ($IBU_CLUSTER_ID)")
	return s
}
