package dataprotection_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

// TestServiceOverNATS drives the service by its tasks on JetStream, as the
// node agent does: validation in Prep creates nothing, a PartiallyFailed
// Backup is answered with backup.failed naming it (the agent stops before
// the pivot), and after a fix the backup and the restore complete.
func TestServiceOverNATS(t *testing.T) {
	c := newCluster(t)
	_, js := natstest.StartHub(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sno-1.kubeconfig"), kube.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	svc := dataprotection.New(js, dataprotection.Config{Clusters: clusterkube.Dir(dir), WaitTimeout: time.Minute})
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stopped })

	oadp := []events.ObjectRef{c.configMap("oadp", map[string]string{"a.yaml": pair})}
	extra := []events.ObjectRef{c.configMap("extra", map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after-pivot}\ndata: {a: b}\n"})}

	ans := ask(t, c.ctx, js, events.BackupRequested{ClusterID: "sno-1", Generation: 2, OADPContent: oadp, ExtraManifests: extra, ValidateOnly: true},
		events.TypeBackupCompleted, events.TypeBackupFailed)
	if ans.Type() != events.TypeBackupCompleted {
		t.Fatalf("validation answered %s: %s", ans.Type(), ans.Data())
	}
	if list, _ := c.dc.Resource(gvrBackup).Namespace(c.ns).List(c.ctx, metav1.ListOptions{}); len(list.Items) != 0 {
		t.Fatal("validation created Backups")
	}

	c.velero.set("Backup", "apps", outcome{Phase: "PartiallyFailed", FailureReason: "1 pod volume backup failed"})
	ans = ask(t, c.ctx, js, events.BackupRequested{ClusterID: "sno-1", Generation: 3, OADPContent: oadp, ExtraManifests: extra},
		events.TypeBackupCompleted, events.TypeBackupFailed)
	failed, err := events.DataAs[events.BackupFailed](ans)
	if err != nil || ans.Type() != events.TypeBackupFailed || failed.Backup != "apps" || failed.Reason != dataprotection.ReasonBackupFailed || failed.Generation != 3 {
		t.Fatalf("answer %s %+v (%v); want backup.failed for apps", ans.Type(), failed, err)
	}

	c.velero.set("Backup", "apps", outcome{Phase: "Completed"})
	ans = ask(t, c.ctx, js, events.BackupRequested{ClusterID: "sno-1", Generation: 4, OADPContent: oadp, ExtraManifests: extra},
		events.TypeBackupCompleted, events.TypeBackupFailed)
	done, err := events.DataAs[events.BackupCompleted](ans)
	if err != nil || ans.Type() != events.TypeBackupCompleted || len(done.Backups) != 1 || done.Backups[0].Phase != "Completed" {
		t.Fatalf("answer %s %s; want backup.completed", ans.Type(), ans.Data())
	}

	ans = ask(t, c.ctx, js, events.RestoreRequested{ClusterID: "sno-1", Generation: 4, OADPContent: oadp, ExtraManifests: extra},
		events.TypeRestoreCompleted, events.TypeRestoreFailed)
	restored, err := events.DataAs[events.RestoreCompleted](ans)
	if err != nil || ans.Type() != events.TypeRestoreCompleted || len(restored.Restores) != 1 || restored.ExtraManifestsApplied != 1 {
		t.Fatalf("answer %s %s; want restore.completed with 1 restore and 1 extra manifest", ans.Type(), ans.Data())
	}
}

// ask publishes a task and returns the service's answer.
func ask(t *testing.T, ctx context.Context, js jetstream.JetStream, req events.Data, okType, failType string) cloudevents.Event {
	t.Helper()
	var subjects []string
	for _, typ := range []string{okType, failType} {
		sub, err := events.SubjectFor(typ, "sno-1")
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, sub)
	}
	cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.New("/test", "sno-1", req)
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := events.SubjectFor(req.EventType(), "sno-1")
	if _, err := bus.NewPublisher(js).Publish(ctx, subj, e); err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(60 * time.Second))
	if err != nil {
		t.Fatalf("no answer to %s: %v", req.EventType(), err)
	}
	ans, err := bus.FromHeaders(msg.Headers(), msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	return ans
}
