// Command gcs-front is the local stack's GCS server: fake-gcs-server's
// storage and JSON API (its fakestorage package, embedded), plus the XML API
// requests that the Rust object_store crate's GCS client sends, on one port.
//
// Why: object_store writes gs:// through the GCS XML API (PUT /{bucket}/{key},
// XML multipart, x-goog-if-generation-match), which fake-gcs-server v1.55
// answers with 400 "invalid uploadType". Its reads, lists and deletes work;
// its writes do not. This front serves those writes (xml.go) on the same
// storage, so an object written through XML is the one the JSON API, and the
// BigQuery emulator's loads from GCS (STORAGE_EMULATOR_HOST), read.
//
// What it does not do (GCS does): signed URLs and authentication (any bearer
// token passes), object versioning (the filesystem backend keeps only the
// live generation), metagenerations (always 1), the x-goog-if-metageneration
// and copy-source conditions (refused with 501), virtual-hosted bucket
// names, composite-object ETags (a completed multipart upload's ETag is the
// MD5 of its bytes), part listing (GET ?uploadId), and in-progress multipart
// uploads surviving a restart (their parts are held in memory). Conditions
// are atomic among XML requests; a JSON API write racing an XML conditional
// write is not guarded (the stack has no such writer). gRPC is not served.
//
// Flags are fake-gcs-server's own, those stack/stack.sh passes:
//
//	gcs-front -scheme http -host 127.0.0.1 -port 4443 -backend filesystem \
//	    -filesystem-root DIR -public-host 127.0.0.1:4443 \
//	    -external-url http://127.0.0.1:4443 -log-level error
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

func main() {
	scheme := flag.String("scheme", "http", "only http: the stack has no TLS")
	host := flag.String("host", "127.0.0.1", "address to bind to (loopback only)")
	port := flag.Uint("port", 4443, "port to bind to")
	backend := flag.String("backend", "filesystem", "storage backend: memory or filesystem")
	root := flag.String("filesystem-root", "", "folder of the filesystem backend (created if missing)")
	publicHost := flag.String("public-host", "", "host:port clients put in the Host header (default host:port)")
	externalURL := flag.String("external-url", "", "URL returned in resumable uploads' Location (default http://host:port)")
	logLevel := flag.String("log-level", "error", "debug logs every request; anything else logs errors only")
	flag.Parse()

	if *scheme != "http" {
		log.Fatalf("-scheme %q: only http is served", *scheme)
	}
	// The stack serves this machine only: no object reaches another.
	if ip := net.ParseIP(*host); *host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("-host %q: only a loopback address (127.0.0.1, ::1 or localhost) is served", *host)
	}
	addr := net.JoinHostPort(*host, fmt.Sprint(*port))
	if *publicHost == "" {
		*publicHost = addr
	}
	if *externalURL == "" {
		*externalURL = "http://" + addr
	}
	opts := fakestorage.Options{
		Scheme:      "http",
		Host:        *host,
		Port:        uint16(*port),
		PublicHost:  *publicHost,
		ExternalURL: *externalURL,
		NoListener:  true, // we listen, so the front sees every request first
	}
	switch *backend {
	case "memory":
	case "filesystem":
		if *root == "" {
			log.Fatal("-backend filesystem needs -filesystem-root")
		}
		abs, err := filepath.Abs(*root)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			log.Fatal(err)
		}
		opts.StorageRoot = abs
	default:
		log.Fatalf("-backend %q: memory or filesystem", *backend)
	}
	if *logLevel == "debug" {
		opts.Writer = os.Stderr
	}

	gcs, err := fakestorage.NewServerWithOptions(opts)
	if err != nil {
		log.Fatal(err)
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           newFront(gcs),
		ReadHeaderTimeout: 30 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()

	log.Printf("gcs-front listening on http://%s (backend %s %s)", addr, *backend, opts.StorageRoot)
	if err := srv.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	log.Printf("gcs-front stopped")
}
