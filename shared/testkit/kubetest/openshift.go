package kubetest

import _ "embed"

// OpenShiftCRDs holds minimal CRDs for the OpenShift, OLM and OADP types
// that ibu reads or refuses: ClusterOperator, ClusterVersion,
// MachineConfigPool, MachineConfig (config/machineconfiguration.openshift.io),
// ClusterServiceVersion and Subscription (operators.coreos.com) and
// DataProtectionApplication (oadp.openshift.io). They have the real names,
// versions, scopes and status subresources, and an open schema.
//
//go:embed openshift.yaml
var OpenShiftCRDs []byte
