// Package backuprestore drives Velero Backups before the pivot and Restores,
// wave by wave, after it, from the OADP ConfigMaps of a plan. Built by issue 7.
package backuprestore
