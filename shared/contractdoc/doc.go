// Package contractdoc renders the generated sections of the repository's
// documents from the code that defines them: the event contract table (from
// package events) and the NATS topology table (from package bus), and
// rewrites the text between a document's begin/end markers.
package contractdoc
