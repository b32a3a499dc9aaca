// Package dataprotection drives Velero Backups before the pivot and Restores,
// wave by wave, after it, from the OADP ConfigMaps of a plan.
package dataprotection
