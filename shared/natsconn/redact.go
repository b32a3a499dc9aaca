package natsconn

import (
	"net/url"
	"strings"
)

// Redact hides the user information of every URL in a comma-separated
// list.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
