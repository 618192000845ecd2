package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/backfillhq/backfill/emulator"
)

func ExampleNew() {
	srv, err := emulator.New(emulator.Config{APIKeys: []string{"test-key"}})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	body := `{"api_key":"test-key","events":[{"event_type":"Signup","user_id":"user-0001","insert_id":"a-1"}]}`
	resp, err := http.Post(ts.URL+"/batch", "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(string(b), `"events_ingested":1`))
	fmt.Println(len(srv.Events()), srv.Events()[0].UserID)
	// Output:
	// 200 true
	// 1 user-0001
}
