package uploader_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/uploader"
)

func ExampleClient_Send() {
	// A stand-in for Amplitude: the first request has a bad "time" in event 1.
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if first {
			first = false
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[1]}}`)
			return
		}
		fmt.Fprint(w, `{"code":200,"events_ingested":2,"payload_size_bytes":100,"server_upload_time":1717000000123}`)
	}))
	defer srv.Close()

	c, err := uploader.New(uploader.Options{Endpoint: srv.URL, APIKey: "my-key", MinIDLength: 3, Logger: discardLogger()})
	if err != nil {
		panic(err)
	}
	events := []backfill.Event{
		{Raw: []byte(`{"event_type":"a","user_id":"u-1","time":1700000000000,"insert_id":"x-0"}`)},
		{Raw: []byte(`{"event_type":"b","user_id":"u-1","time":"yesterday","insert_id":"x-1"}`)},
		{Raw: []byte(`{"event_type":"c","user_id":"u-1","time":1700000000002,"insert_id":"x-2"}`)},
	}
	res, err := c.Send(context.Background(), backfill.RouteBatch, events)
	if err != nil {
		panic(err)
	}
	fmt.Println("accepted:", res.Accepted)
	for _, rj := range res.Rejected {
		fmt.Printf("rejected: %d (%s)\n", rj.Index, rj.Reason)
	}
	fmt.Println("requests:", res.Stats.Requests)
	// Output:
	// accepted: [0 2]
	// rejected: 1 (invalid field time)
	// requests: 2
}
