// Command ferretdb-embedded runs FerretDB v1 with the SQLite backend inside
// our own binary. The upstream CLI built with `go install` panics at start
// because build/version/version.txt is missing from the module zip
// (FerretDB issue #2982); the embedded API does not read that file.
//
// Modes:
//
//	ferretdb-embedded -listen 127.0.0.1:27017 -dir DIR   serve until SIGTERM/SIGINT
//	ferretdb-embedded -ping 127.0.0.1:27017              run {ping: 1}, exit 0 (ok) or 1
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (loopback only)")
	dir := flag.String("dir", "", "directory for the SQLite databases")
	ping := flag.String("ping", "", "instead of serving, send {ping: 1} to this address and exit 0 on success, 1 on failure")
	timeout := flag.Duration("timeout", 3*time.Second, "timeout for -ping")
	logLevel := flag.String("log-level", "warn", "server log level: debug, info, warn or error")
	flag.Parse()

	if *ping != "" {
		if err := doPing(*ping, *timeout); err != nil {
			fmt.Fprintf(os.Stderr, "ping %s: %v\n", *ping, err)
			os.Exit(1)
		}
		fmt.Println("ok")
		return
	}

	if *dir == "" {
		log.Fatal("-dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		log.Fatal(err)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("bad -log-level %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/", // FerretDB requires the trailing slash
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	log.Printf("ferretdb listening on %s, data in %s", *listen, abs)
	if err := f.Run(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("ferretdb stopped")
}

// doPing connects to addr directly (no replica-set discovery) and runs {ping: 1}.
func doPing(addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	opts := options.Client().
		ApplyURI("mongodb://" + addr + "/?directConnection=true").
		SetServerSelectionTimeout(timeout).
		SetConnectTimeout(timeout)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background())

	return client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}
