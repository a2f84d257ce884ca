// Package k8s holds the Kubernetes manifests of a distributed run (see README.md) and the test
// that checks them; it has no code of its own.
package k8s
