// Command xdsproxy is Tier C's stand-in for the Envoy in an injected pod: it holds the one xDS
// stream a sidecar or gateway proxy holds to istiod, so istiod's own views (/debug/syncz, the
// istio.io/debug/syncz xDS type istioctl reads) list it as a connected proxy.
//
// It connects where the pod's injected proxy configuration points (the harness resolves that
// Service to the local istiod process, on its plaintext gRPC port), identifies itself with the
// node ID and metadata Envoy sends, asks for clusters and listeners, and ACKs what it receives.
// With -ack=withhold it never ACKs (istiod shows the proxy STALE); with -ack=nack it rejects every
// response. It reconnects after a lost stream, as Envoy does, until it is stopped.
//
// With -count N it plays N proxies at once (the proxy-status benchmark): "{i}" and "{ip}" in
// -node-id become each one's number and an address of its own.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	status "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

func main() {
	address := flag.String("address", "", "istiod's plaintext xDS address (host:port)")
	nodeID := flag.String("node-id", "", "the Envoy node ID: sidecar~IP~POD.NS~NS.svc.cluster.local")
	metaJSON := flag.String("meta", "{}", "node metadata as a JSON object")
	ack := flag.String("ack", "ack", "ack | withhold | nack")
	count := flag.Int("count", 1, "how many proxies to play ({i} and {ip} in -node-id)")
	flag.Parse()
	if *address == "" || *nodeID == "" {
		log.Fatal("-address and -node-id are required")
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(*metaJSON), &meta); err != nil {
		log.Fatalf("-meta: %v", err)
	}
	metadata, err := structpb.NewStruct(meta)
	if err != nil {
		log.Fatalf("-meta: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var all sync.WaitGroup
	for i := 0; i < *count; i++ {
		id := strings.ReplaceAll(*nodeID, "{i}", strconv.Itoa(i))
		id = strings.ReplaceAll(id, "{ip}", "10.250."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250+1))
		all.Add(1)
		go func() {
			defer all.Done()
			hold(ctx, *address, &core.Node{Id: id, Metadata: metadata}, *ack)
		}()
	}
	all.Wait()
	os.Exit(0)
}

// hold keeps one proxy's stream up, reconnecting with a back-off, until ctx ends.
func hold(ctx context.Context, address string, node *core.Node, ack string) {
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := stream(ctx, address, node, ack)
		if ctx.Err() != nil {
			return
		}
		log.Printf("stream to %s ended: %v", address, err)
		if time.Since(started) > 10*time.Second {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// stream holds one ADS stream until it fails or ctx ends.
func stream(ctx context.Context, address string, node *core.Node, ack string) error {
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	// Envoy sends the node on the first request of the stream only.
	for i, typeURL := range []string{clusterType, listenerType} {
		req := &discovery.DiscoveryRequest{TypeUrl: typeURL}
		if i == 0 {
			req.Node = node
		}
		if err := ads.Send(req); err != nil {
			return err
		}
	}
	log.Printf("connected to %s as %s", address, node.Id)
	for {
		resp, err := ads.Recv()
		if err != nil {
			return err
		}
		switch ack {
		case "withhold":
			continue
		case "nack":
			err = ads.Send(&discovery.DiscoveryRequest{
				TypeUrl:       resp.TypeUrl,
				ResponseNonce: resp.Nonce,
				ErrorDetail:   &status.Status{Code: 3, Message: "rejected by the test proxy (-ack=nack)"},
			})
		default:
			err = ads.Send(&discovery.DiscoveryRequest{
				TypeUrl:       resp.TypeUrl,
				VersionInfo:   resp.VersionInfo,
				ResponseNonce: resp.Nonce,
			})
		}
		if err != nil {
			return err
		}
	}
}
