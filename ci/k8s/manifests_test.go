package k8s

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/squall-dev/squall/harness"
	"github.com/squall-dev/squall/scenarios"
)

// The parts of Kubernetes objects the test reads.
type (
	object struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   metadata          `yaml:"metadata"`
		Spec       spec              `yaml:"spec"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
		Data       map[string]string `yaml:"data"`
		file       string
	}
	metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	spec struct {
		// Job
		CompletionMode string   `yaml:"completionMode"`
		Completions    *int     `yaml:"completions"`
		Parallelism    *int     `yaml:"parallelism"`
		Template       template `yaml:"template"`
		// Service
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []servicePort     `yaml:"ports"`
	}
	servicePort struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	}
	template struct {
		Metadata metadata `yaml:"metadata"`
		Spec     podSpec  `yaml:"spec"`
	}
	podSpec struct {
		Subdomain       string      `yaml:"subdomain"`
		RestartPolicy   string      `yaml:"restartPolicy"`
		SecurityContext podSecurity `yaml:"securityContext"`
		Containers      []container `yaml:"containers"`
		Volumes         []volume    `yaml:"volumes"`
	}
	podSecurity struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	}
	container struct {
		Name         string        `yaml:"name"`
		Image        string        `yaml:"image"`
		Args         []string      `yaml:"args"`
		Env          []envVar      `yaml:"env"`
		Ports        []port        `yaml:"ports"`
		Resources    resources     `yaml:"resources"`
		VolumeMounts []volumeMount `yaml:"volumeMounts"`
		Security     struct {
			ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			FieldRef     *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	port struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}
	resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	volume struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string                       `yaml:"secretName"`
			Items      []struct{ Key, Path string } `yaml:"items"`
		} `yaml:"secret"`
		ConfigMap *struct{ Name string } `yaml:"configMap"`
	}
)

// load reads every manifest of this directory, one object per YAML document.
func load(t *testing.T) map[string]object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var o object
			if err := yaml.Unmarshal(doc, &o); err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s, document %d: want apiVersion, kind and metadata.name", f, i+1)
			}
			o.file = f
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := objs[key]; dup {
				t.Fatalf("%s: %s defined twice", f, key)
			}
			objs[key] = o
		}
	}
	return objs
}

func get(t *testing.T, objs map[string]object, key string) object {
	t.Helper()
	o, ok := objs[key]
	if !ok {
		t.Fatalf("no %s among the manifests", key)
	}
	return o
}

// flag returns the value of --name=value in args ("" and false when absent).
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "", true
		}
	}
	return "", false
}

// mountOf returns the volume mounted at the directory holding path.
func mountOf(c container, vols []volume, path string) (volume, bool) {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(path) == m.MountPath {
			for _, v := range vols {
				if v.Name == m.Name {
					return v, true
				}
			}
		}
	}
	return volume{}, false
}

// secretFile checks that path is a key of secret mounted into c.
func secretFile(t *testing.T, c container, vols []volume, path, secret string) {
	t.Helper()
	v, ok := mountOf(c, vols, path)
	if !ok || v.Secret == nil || v.Secret.SecretName != secret {
		t.Errorf("container %s: %s is not a file of Secret %s", c.Name, path, secret)
		return
	}
	if !slices.ContainsFunc(v.Secret.Items, func(it struct{ Key, Path string }) bool { return it.Path == filepath.Base(path) }) {
		t.Errorf("container %s: Secret %s volume has no item %s", c.Name, secret, filepath.Base(path))
	}
}

func env(c container, name string) (envVar, bool) {
	i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == name })
	if i < 0 {
		return envVar{}, false
	}
	return c.Env[i], true
}

// quantity reads a Kubernetes quantity: bytes (Ki, Mi, Gi) or CPUs (m).
func quantity(t *testing.T, s string) float64 {
	t.Helper()
	units := map[string]float64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "m": 0.001, "": 1}
	for _, u := range []string{"Ki", "Mi", "Gi", "m", ""} {
		if n, ok := strings.CutSuffix(s, u); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", s, err)
			}
			return f * units[u]
		}
	}
	return 0
}

var varRef = regexp.MustCompile(`\$\(([A-Z_][A-Z0-9_]*)\)`)

// TestManifests checks what a distributed run on Kubernetes depends on: images built by make
// images, agents as an Indexed Job whose completion index is the shard and whose pods the
// controller finds through the headless Service in index order, the token and TLS from Secrets,
// the scenario from a ConfigMap, and resources that cover what loadgen doctor says an agent needs.
func TestManifests(t *testing.T) {
	objs := load(t)
	agents := get(t, objs, "Job/squall-agents")
	ctrl := get(t, objs, "Job/squall-controller")
	svc := get(t, objs, "Service/squall-agents")
	token := get(t, objs, "Secret/squall-agent-token")
	tlsSecret := get(t, objs, "Secret/squall-agent-tls")
	cm := get(t, objs, "ConfigMap/squall-scenario")

	// Images: the loadgen image make images builds (ci/docker/loadgen.Dockerfile), tagged VERSION.
	for _, job := range []object{agents, ctrl} {
		for _, c := range job.Spec.Template.Spec.Containers {
			name, tag, _ := strings.Cut(c.Image, ":")
			if name != "squall/loadgen" || tag == "" {
				t.Errorf("%s: image %q, want squall/loadgen:TAG", job.file, c.Image)
			}
			if _, err := os.Stat(filepath.Join("..", "docker", strings.TrimPrefix(name, "squall/")+".Dockerfile")); err != nil {
				t.Errorf("%s: no Dockerfile for image %s: %v", job.file, c.Image, err)
			}
			// Every $(VAR) of the arguments is declared in the container's env.
			for _, a := range c.Args {
				for _, m := range varRef.FindAllStringSubmatch(a, -1) {
					if _, ok := env(c, m[1]); !ok {
						t.Errorf("%s: argument %q refers to $(%s), which the container's env does not declare", job.file, a, m[1])
					}
				}
			}
			// The images run as nobody, read-only.
			sc := job.Spec.Template.Spec.SecurityContext
			if !sc.RunAsNonRoot || sc.RunAsUser != 65534 || !c.Security.ReadOnlyRootFilesystem || c.Security.AllowPrivilegeEscalation {
				t.Errorf("%s: want runAsNonRoot as 65534, a read-only root and no privilege escalation", job.file)
			}
			// The token from its Secret.
			e, ok := env(c, "LOADGEN_AGENT_TOKEN")
			if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != token.Metadata.Name ||
				token.StringData[e.ValueFrom.SecretKeyRef.Key] == "" {
				t.Errorf("%s: LOADGEN_AGENT_TOKEN must come from Secret %s, key token", job.file, token.Metadata.Name)
			}
			if e.Value != "" {
				t.Errorf("%s: the token is written in the manifest", job.file)
			}
			if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 {
				t.Errorf("%s: container %s has no requests or limits", job.file, c.Name)
			}
		}
	}

	// Agents: an Indexed Job, every pod of which is one shard.
	as := agents.Spec
	if as.CompletionMode != "Indexed" || as.Completions == nil || as.Parallelism == nil || *as.Completions != *as.Parallelism || *as.Completions < 1 {
		t.Fatalf("agents: completionMode %q, completions %v, parallelism %v: want Indexed with every shard running at once",
			as.CompletionMode, as.Completions, as.Parallelism)
	}
	n := *as.Completions
	if len(as.Template.Spec.Containers) != 1 {
		t.Fatalf("agents: %d containers", len(as.Template.Spec.Containers))
	}
	ag := as.Template.Spec.Containers[0]
	if ag.Args[0] != "agent" {
		t.Errorf("agents run %q, want the agent command", ag.Args[0])
	}
	shard, _ := flag(ag.Args, "shard")
	se, ok := env(ag, strings.Trim(strings.TrimPrefix(shard, "$("), ")"))
	if shard == "" || !ok || se.ValueFrom == nil || se.ValueFrom.FieldRef == nil ||
		se.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("agents: --shard %q must be the pod's completion index (env from the job-completion-index annotation)", shard)
	}
	listen, _ := flag(ag.Args, "listen")
	_, listenPort, _ := strings.Cut(listen, ":")
	cert, _ := flag(ag.Args, "tls-cert")
	key, _ := flag(ag.Args, "tls-key")
	if cert == "" || key == "" {
		t.Errorf("agents serve without TLS: --tls-cert %q, --tls-key %q", cert, key)
	}
	if _, insecure := flag(ag.Args, "insecure"); insecure {
		t.Errorf("agents serve plain HTTP (--insecure)")
	}
	secretFile(t, ag, as.Template.Spec.Volumes, cert, tlsSecret.Metadata.Name)
	secretFile(t, ag, as.Template.Spec.Volumes, key, tlsSecret.Metadata.Name)
	if tlsSecret.Type != "kubernetes.io/tls" || tlsSecret.StringData["ca.crt"] == "" || tlsSecret.StringData["tls.crt"] == "" || tlsSecret.StringData["tls.key"] == "" {
		t.Errorf("Secret %s: type %q, want kubernetes.io/tls with tls.crt, tls.key and ca.crt", tlsSecret.Metadata.Name, tlsSecret.Type)
	}

	// Resources: an agent holds at most one process's worth of clients; its memory must cover
	// what loadgen doctor's per-client costs say, and be requested in full.
	need := float64(harness.AgentMemory(harness.DefaultFDsPerProcess))
	limit, request := quantity(t, ag.Resources.Limits["memory"]), quantity(t, ag.Resources.Requests["memory"])
	if limit < need || request != limit {
		t.Errorf("agents: memory request %s, limit %s: want both at least %.0f MiB (%d clients)", ag.Resources.Requests["memory"],
			ag.Resources.Limits["memory"], need/(1<<20), harness.DefaultFDsPerProcess)
	}
	if quantity(t, ag.Resources.Requests["cpu"]) < 1 {
		t.Errorf("agents: cpu request %s: want at least one core", ag.Resources.Requests["cpu"])
	}

	// The headless Service selects the agent pods and names them for the controller.
	if svc.Spec.ClusterIP != "None" {
		t.Errorf("Service %s: clusterIP %q, want None (headless)", svc.Metadata.Name, svc.Spec.ClusterIP)
	}
	if as.Template.Spec.Subdomain != svc.Metadata.Name {
		t.Errorf("agents: subdomain %q, want the headless Service %s", as.Template.Spec.Subdomain, svc.Metadata.Name)
	}
	for k, v := range svc.Spec.Selector {
		if as.Template.Metadata.Labels[k] != v {
			t.Errorf("Service %s selects %s=%s, which the agent pods lack", svc.Metadata.Name, k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || strconv.Itoa(svc.Spec.Ports[0].Port) != listenPort ||
		!slices.ContainsFunc(ag.Ports, func(p port) bool {
			return p.Name == svc.Spec.Ports[0].TargetPort && strconv.Itoa(p.ContainerPort) == listenPort
		}) {
		t.Errorf("Service %s ports %+v do not lead to the agents' --listen %s", svc.Metadata.Name, svc.Spec.Ports, listen)
	}

	// The controller: the scenario from the ConfigMap, every agent in shard order, TLS verified.
	if len(ctrl.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("controller: %d containers", len(ctrl.Spec.Template.Spec.Containers))
	}
	cc := ctrl.Spec.Template.Spec.Containers[0]
	if len(cc.Args) < 2 || cc.Args[0] != "run" {
		t.Fatalf("controller args %v, want run SCENARIO", cc.Args)
	}
	list, _ := flag(cc.Args, "agents")
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%s-%d.%s:%s", agents.Metadata.Name, i, svc.Metadata.Name, listenPort))
	}
	if list != strings.Join(want, ",") {
		t.Errorf("controller --agents %q, want the %d agents in shard order: %s", list, n, strings.Join(want, ","))
	}
	ca, _ := flag(cc.Args, "agent-ca")
	secretFile(t, cc, ctrl.Spec.Template.Spec.Volumes, ca, tlsSecret.Metadata.Name)
	if _, insecure := flag(cc.Args, "agents-insecure"); insecure {
		t.Errorf("controller speaks plain HTTP to the agents (--agents-insecure)")
	}
	if _, ok := flag(cc.Args, "shutdown-agents"); !ok {
		t.Errorf("controller does not ask the agents to exit: their Job would never complete")
	}
	file := cc.Args[1]
	v, ok := mountOf(cc, ctrl.Spec.Template.Spec.Volumes, file)
	if !ok || v.ConfigMap == nil || v.ConfigMap.Name != cm.Metadata.Name || cm.Data[filepath.Base(file)] == "" {
		t.Fatalf("controller scenario %s is not a file of ConfigMap %s", file, cm.Metadata.Name)
	}
	if _, err := scenarios.Parse(file, []byte(cm.Data[filepath.Base(file)])); err != nil {
		t.Errorf("the ConfigMap's scenario is invalid: %v", err)
	}
}
