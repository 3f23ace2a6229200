// test-cluster: a Kubernetes API server on 127.0.0.1 for the tests that run kubectl and Helm
// against a cluster (the migration guide's commands). It is the real kube-apiserver and kubectl
// of k8s.io/kubernetes, with etcd embedded; there are no nodes, no kubelet and no controllers,
// so objects are stored, validated, admitted and served exactly as by a cluster, but no pod
// ever runs.
//
// One binary, three programs:
//
//	test-cluster serve --dir DIR --port PORT --etcd-port PORT --etcd-peer-port PORT
//	    starts etcd and the API server as child processes (killed when serve dies), writes
//	    DIR/kubeconfig, and prints "ready DIR/kubeconfig" once /readyz answers ok.
//	test-cluster kubectl ARGS... (or the binary called as "kubectl")
//	    kubectl itself.
//	test-cluster etcd|apiserver ARGS...
//	    what serve starts.
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if filepath.Base(os.Args[0]) == "kubectl" {
		os.Exit(cli.Run(kubectl.NewDefaultKubectlCommand()))
	}
	if len(os.Args) < 2 {
		fail("usage: test-cluster serve|kubectl|etcd|apiserver ARGS...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "kubectl":
		os.Args = append([]string{"kubectl"}, args...)
		os.Exit(cli.Run(kubectl.NewDefaultKubectlCommand()))
	case "apiserver":
		os.Args = append([]string{"kube-apiserver"}, args...)
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "etcd":
		etcd(args)
	default:
		fail("unknown program %q: serve, kubectl, etcd or apiserver", os.Args[1])
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "test-cluster: "+format+"\n", args...)
	os.Exit(2)
}

// etcd runs one etcd member on 127.0.0.1 until killed, printing "ready" once it serves.
func etcd(args []string) {
	flags := flag.NewFlagSet("etcd", flag.ExitOnError)
	dir := flags.String("data-dir", "", "data directory")
	clientPort := flags.Int("client-port", 0, "client port on 127.0.0.1")
	peerPort := flags.Int("peer-port", 0, "peer port on 127.0.0.1")
	_ = flags.Parse(args)
	if *dir == "" || *clientPort == 0 || *peerPort == 0 {
		fail("etcd needs --data-dir, --client-port and --peer-port")
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.LogLevel = "error"
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *clientPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *peerPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		fail("etcd did not start: %v", err)
	}
	select {
	case <-server.Server.ReadyNotify():
		fmt.Println("ready")
	case <-time.After(60 * time.Second):
		fail("etcd was not ready within 60 s")
	}
	fail("etcd stopped: %v", <-server.Err())
}

// serve starts etcd and the API server, and prints "ready KUBECONFIG" once the API server's
// /readyz answers ok. It runs until killed; its children die with it.
func serve(args []string) {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := flags.String("dir", "", "a new directory for etcd's data, keys, logs and the kubeconfig")
	port := flags.Int("port", 0, "the API server's port on 127.0.0.1")
	etcdPort := flags.Int("etcd-port", 0, "etcd's client port on 127.0.0.1")
	etcdPeerPort := flags.Int("etcd-peer-port", 0, "etcd's peer port on 127.0.0.1")
	_ = flags.Parse(args)
	if *dir == "" || *port == 0 || *etcdPort == 0 || *etcdPeerPort == 0 {
		fail("serve needs --dir, --port, --etcd-port and --etcd-peer-port")
	}
	must(os.MkdirAll(*dir, 0o700))
	// Children get SIGKILL when this thread ends: keep main on one thread.
	runtime.LockOSThread()

	etcdProc := start(*dir, "etcd", "--data-dir", filepath.Join(*dir, "etcd"),
		"--client-port", fmt.Sprint(*etcdPort), "--peer-port", fmt.Sprint(*etcdPeerPort))
	waitForLine(etcdProc, "etcd")

	token := randomHex(16)
	keyFile := filepath.Join(*dir, "service-account.key")
	writeServiceAccountKey(keyFile)
	tokens := filepath.Join(*dir, "tokens.csv")
	must(os.WriteFile(tokens, []byte(token+`,admin,1,"system:masters"`+"\n"), 0o600))
	api := start(*dir, "apiserver",
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", *etcdPort),
		fmt.Sprintf("--secure-port=%d", *port),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir="+filepath.Join(*dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=AlwaysAllow",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+keyFile,
		"--service-account-signing-key-file="+keyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The "kubernetes" Service's endpoint would be 127.0.0.1, which the reconciler refuses.
		"--endpoint-reconciler-type=none",
	)
	server := fmt.Sprintf("https://127.0.0.1:%d", *port)
	waitReady(server, token, api)

	kubeconfig := filepath.Join(*dir, "kubeconfig")
	must(os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin
current-context: test
`, server, token)), 0o600))
	fmt.Printf("ready %s\n", kubeconfig)

	// Until killed, or until a child stops.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	died := make(chan string, 2)
	go func() { _ = etcdProc.Wait(); died <- "etcd" }()
	go func() { _ = api.Wait(); died <- "the API server" }()
	select {
	case <-stop:
		_ = api.Process.Kill()
		_ = etcdProc.Process.Kill()
	case who := <-died:
		_ = api.Process.Kill()
		_ = etcdProc.Process.Kill()
		fail("%s stopped; see %s", who, *dir)
	}
}

// start runs this binary as PROGRAM with ARGS, its standard error into DIR/PROGRAM.log, killed
// when this process ends.
func start(dir, program string, args ...string) *exec.Cmd {
	self, err := os.Executable()
	must(err)
	log, err := os.Create(filepath.Join(dir, program+".log"))
	must(err)
	cmd := exec.Command(self, append([]string{program}, args...)...)
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// waitForLine starts CMD and waits for it to print "ready".
func waitForLine(cmd *exec.Cmd, what string) {
	out, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if strings.TrimSpace(lines.Text()) == "ready" {
			return
		}
	}
	_ = cmd.Wait()
	fail("%s stopped before it was ready (%v); see its log", what, cmd.ProcessState)
}

// waitReady starts CMD and polls SERVER/readyz until it answers 200, or fails when CMD ends or
// after two minutes.
func waitReady(server, token string, cmd *exec.Cmd) {
	must(cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(2 * time.Minute)
	last := "no answer yet"
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			fail("the API server stopped before it was ready (%v); see apiserver.log", cmd.ProcessState)
		default:
		}
		req, _ := http.NewRequest("GET", server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err != nil {
			last = err.Error()
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		}
		select {
		case <-exited:
		case <-time.After(200 * time.Millisecond):
		}
	}
	fail("the API server was not ready within 2 minutes (last: %s); see apiserver.log", last)
}

func writeServiceAccountKey(path string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	der := x509.MarshalPKCS1PrivateKey(key)
	must(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(err)
	return hex.EncodeToString(b)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}
