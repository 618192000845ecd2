// Package storagesrv starts real storage servers as separate processes for
// tests: an S3-compatible server (MinIO), fake-gcs-server and Azurite, as
// installed by `make storage-servers` (scripts/storage-servers.sh) into the
// git-ignored .tools directory of the repository, or into the directory
// named by BACKFILL_STORAGE_TOOLS.
//
// Each server listens on a free loopback port, keeps its data in a
// directory of its own, and can be restarted on the same port and data
// (Restart) to test a server that goes away mid-run. A server that is not
// installed is reported by Start as ErrNotInstalled, so a test can skip
// with a message naming what is missing and how to install it.
//
// Only tests import this package.
package storagesrv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ToolsEnv names the directory the servers are installed in (default: the
// .tools directory at the root of the repository).
const ToolsEnv = "BACKFILL_STORAGE_TOOLS"

// ErrNotInstalled is returned (wrapped) by Start when a server's program is
// not installed.
var ErrNotInstalled = errors.New("storage server not installed")

// Kinds of server.
const (
	S3    = "s3"    // MinIO
	GCS   = "gcs"   // fake-gcs-server
	Azure = "azure" // Azurite (blob service only)
)

// Kinds lists every kind, in the order tests run them.
var Kinds = []string{S3, GCS, Azure}

// Credentials the servers are started with. Azurite's are its documented
// development-storage account and key.
const (
	S3AccessKey  = "backfilltest"
	S3SecretKey  = "backfilltest-secret"
	AzureAccount = "devstoreaccount1"
	AzureKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Tools returns the directory servers are installed in.
func Tools() string {
	if d := os.Getenv(ToolsEnv); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ".tools"
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/backfillhq/backfill\n")) {
			return filepath.Join(dir, ".tools")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ".tools"
		}
		dir = parent
	}
}

// Program returns the path of kind's program and its name for messages.
func Program(kind string) (path, name string) {
	tools := Tools()
	switch kind {
	case S3:
		return filepath.Join(tools, "bin", "minio"), "MinIO"
	case GCS:
		return filepath.Join(tools, "bin", "fake-gcs-server"), "fake-gcs-server"
	case Azure:
		return filepath.Join(tools, "azurite", "node_modules", ".bin", "azurite-blob"), "Azurite"
	}
	panic("storagesrv: unknown kind " + kind)
}

// Server is one running server.
type Server struct {
	Kind string
	Name string // "MinIO", "fake-gcs-server", "Azurite"
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Endpoint is http://Addr.
	Endpoint string

	dir, prog string
	logf      *os.File

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd ended
}

// Start starts a server of kind with its data under dir (created if
// needed), waiting until it answers. Stop it with Stop.
func Start(kind, dir string) (*Server, error) {
	prog, name := Program(kind)
	if _, err := os.Stat(prog); err != nil {
		return nil, fmt.Errorf("%w: %s (%s); run `make storage-servers`", ErrNotInstalled, name, prog)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s := &Server{Kind: kind, Name: name, Addr: addr, Endpoint: "http://" + addr, dir: dir, prog: prog, logf: logf}
	if err := s.start(); err != nil {
		logf.Close()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// args returns the server's command line.
func (s *Server) args() []string {
	data := filepath.Join(s.dir, "data")
	_, port, _ := net.SplitHostPort(s.Addr)
	switch s.Kind {
	case S3:
		return []string{"server", "--quiet", "--address", s.Addr, "--console-address", "127.0.0.1:0", data}
	case GCS:
		return []string{"-scheme", "http", "-host", "127.0.0.1", "-port", port, "-public-host", s.Addr,
			"-backend", "filesystem", "-filesystem-root", data, "-log-level", "warn"}
	default:
		// --skipApiVersionCheck: the Azure SDK in go.mod sends a newer
		// x-ms-version than today's Azurite release knows.
		return []string{"--blobHost", "127.0.0.1", "--blobPort", port, "--location", data,
			"--skipApiVersionCheck", "--silent", "--debug", filepath.Join(s.dir, "azurite-debug.log")}
	}
}

func (s *Server) start() error {
	cmd := exec.Command(s.prog, s.args()...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+S3AccessKey, "MINIO_ROOT_PASSWORD="+S3SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = s.logf, s.logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Stop ends node's children too
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start (%v); see %s", s.Name, werr, s.logf.Name())
		default:
		}
		if s.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("%s did not answer on %s within 90 s; see %s", s.Name, s.Addr, s.logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ready reports whether the server answers HTTP.
func (s *Server) ready() bool {
	path := "/"
	switch s.Kind {
	case S3:
		path = "/minio/health/ready"
	case GCS:
		path = "/storage/v1/b"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return s.Kind != S3 || resp.StatusCode == http.StatusOK
}

// Stop ends the server (its data stays in its directory).
func (s *Server) Stop() {
	s.kill(false)
	s.logf.Close()
}

// kill ends the server: at once, or, when graceful, with SIGTERM and up
// to 15 s to shut down (Azurite, for one, persists its metadata then; a
// SIGKILL loses its last writes).
func (s *Server) kill(graceful bool) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	if graceful {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	// The port must be free before a restart binds it again.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops the server (SIGTERM, as a service manager does) and starts
// it again on the same port and data, after down has passed.
func (s *Server) Restart(down time.Duration) error {
	s.kill(true)
	time.Sleep(down)
	return s.start()
}

// Env returns the environment a client process needs to reach the server
// with its credentials (or, with wrongKey, with a wrong secret), as
// KEY=VALUE pairs. It isolates the cloud SDKs from the developer's own
// configuration.
func (s *Server) Env(wrongKey bool) []string {
	switch s.Kind {
	case S3:
		secret := S3SecretKey
		if wrongKey {
			secret = "not-the-secret"
		}
		return []string{"AWS_ACCESS_KEY_ID=" + S3AccessKey, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_SESSION_TOKEN=",
			"AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1"}
	case GCS:
		return []string{"STORAGE_EMULATOR_HOST=" + s.Addr, "GOOGLE_APPLICATION_CREDENTIALS=", "GOOGLE_CLOUD_PROJECT=test"}
	default:
		key := AzureKey
		if wrongKey {
			key = "d3JvbmcgYXp1cml0ZSBrZXkgZm9yIHRoZSB0ZXN0cyBvZiBiYWNrZmlsbA=="
		}
		return []string{"AZURE_STORAGE_ACCOUNT=" + AzureAccount, "AZURE_STORAGE_KEY=" + key,
			"AZURE_STORAGE_SAS_TOKEN=", "AZURE_STORAGE_CONNECTION_STRING=", "AZURE_STORAGEBLOB_CONNECTIONSTRING=",
			"AZURE_STORAGE_IS_CDN=", "AZURE_STORAGE_DOMAIN=", "AZURE_STORAGE_PROTOCOL=", "AZURE_STORAGE_IS_LOCAL_EMULATOR="}
	}
}

// URL returns the bucket URL of bucket/prefix (prefix may hold a glob) in
// the form the README shows for this kind of server.
func (s *Server) URL(bucket, prefix string) string {
	switch s.Kind {
	case S3:
		return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&use_path_style=true"
	case GCS:
		return "gs://" + bucket + "/" + prefix
	default:
		return "azblob://" + bucket + "/" + prefix + "?localemu=true&protocol=http&domain=" + s.Addr
	}
}

// CreateBucket makes an empty bucket (an Azure container).
func (s *Server) CreateBucket(ctx context.Context, bucket string) error {
	var err error
	switch s.Kind {
	case S3:
		_, err = s.s3Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	case GCS:
		err = s.gcsPost(ctx, s.Endpoint+"/storage/v1/b?project=test", "application/json",
			strings.NewReader(`{"name":"`+bucket+`"}`))
	default:
		var c *container.Client
		if c, err = s.container(bucket); err == nil {
			_, err = c.Create(ctx, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("create bucket %s on %s: %w", bucket, s.Name, err)
	}
	return nil
}

// Upload stores data as bucket/key.
func (s *Server) Upload(ctx context.Context, bucket, key string, data []byte) error {
	var err error
	switch s.Kind {
	case S3:
		_, err = s.s3Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	case GCS:
		err = s.gcsPost(ctx, s.Endpoint+"/upload/storage/v1/b/"+bucket+"/o?uploadType=media&name="+url.QueryEscape(key),
			"application/octet-stream", bytes.NewReader(data))
	default:
		var c *container.Client
		if c, err = s.container(bucket); err == nil {
			_, err = c.NewBlockBlobClient(key).UploadBuffer(ctx, data, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("upload %s/%s to %s: %w", bucket, key, s.Name, err)
	}
	return nil
}

// s3Client is a client of an S3 server with the test credentials.
func (s *Server) s3Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
	})
}

// gcsPost posts body to a GCS server's JSON API at u; a status other than
// 2xx is an error.
func (s *Server) gcsPost(ctx context.Context, u, contentType string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}

// container is a client of an Azure container with the test account's key.
func (s *Server) container(bucket string) (*container.Client, error) {
	cred, err := azblob.NewSharedKeyCredential(AzureAccount, AzureKey)
	if err != nil {
		return nil, err
	}
	return container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+AzureAccount+"/"+bucket, cred, nil)
}
