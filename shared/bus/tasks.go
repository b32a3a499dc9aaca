package bus

import "ibu.dev/shared/events"

// TaskPlacement is where a hub service that works on spokes' APIs takes its
// tasks from. Hub placement (cluster ""): every cluster's tasks, through one
// durable consumer the replicas share. Spoke placement (the service runs on
// cluster): only that cluster's tasks, through a durable of its own.
func TaskPlacement(service, cluster string) (subject, durable string, err error) {
	if cluster == "" {
		return "ibu.task." + service + ".*", service, nil
	}
	if subject, err = events.TaskSubject(service, cluster); err != nil {
		return "", "", err
	}
	return subject, service + "-" + cluster, nil
}
