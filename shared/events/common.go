package events

// ObjectRef names a namespaced Kubernetes object, here always a ConfigMap:
// the OADP content and the extra manifests of an upgrade.
type ObjectRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Kinds of SecretRef.
const (
	// SecretKindKubernetes is a Secret of type kubernetes.io/dockerconfigjson
	// in the cluster where the consuming service runs.
	SecretKindKubernetes = "kubernetes-secret"
	// SecretKindDockerConfigFile is a docker config.json file on the
	// consuming service's file system (e.g. a mounted secret).
	SecretKindDockerConfigFile = "dockerconfig-file"
)

// SecretRef points at registry credentials. Events are an audit log kept for
// a long time and readable by many, so they carry where a secret is, never
// the secret itself.
type SecretRef struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"` // kubernetes-secret: defaults to the service's namespace
	Path      string `json:"path,omitempty"`      // dockerconfig-file: absolute path, required
}
