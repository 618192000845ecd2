package azfake

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var _ http.Handler = (*Server)(nil)

// DefaultMaxResults is the page size of a listing without maxresults, as in
// Azure.
const DefaultMaxResults = 5000

// apiVersion is sent back in x-ms-version; the SDK does not check it.
const apiVersion = "2025-01-05"

// Server is a fake Azure Blob service over loopback HTTP. Create it with New
// and stop it with Close.
type Server struct {
	// URL is the service endpoint, http://127.0.0.1:PORT, without a
	// trailing slash. A container's URL is URL + "/" + name.
	URL string

	ts *httptest.Server

	mu         sync.Mutex
	containers map[string]map[string]*object
	blocks     map[string]map[string][]byte // uncommitted blocks by "container/blob", then block id
	seq        uint64
	stats      Stats
}

// Stats counts the requests served, by kind.
type Stats struct {
	Lists     int64 // List Blobs pages
	Gets      int64 // Get Blob, ranged or not
	RangeGets int64 // Get Blob with a range header
	Heads     int64 // Get Blob Properties
	Puts      int64 // Put Blob, Put Block and Put Block List
	Deletes   int64
}

type object struct {
	data     []byte
	etag     string // without quotes
	md5      []byte
	ctype    string
	meta     http.Header // x-ms-meta-* headers as received
	created  time.Time
	modified time.Time
}

// New starts a server holding containers: container name → blob name →
// content. The maps are copied.
func New(containers map[string]map[string][]byte) *Server {
	s := &Server{containers: map[string]map[string]*object{}, blocks: map[string]map[string][]byte{}}
	for c, blobs := range containers {
		s.containers[c] = map[string]*object{}
		for name, data := range blobs {
			s.Put(c, name, data)
		}
	}
	s.ts = httptest.NewServer(s)
	// Under the lock the handler takes: a request from another process
	// can reach the handler with no Go-visible order to this write.
	s.mu.Lock()
	s.URL = s.ts.URL
	s.mu.Unlock()
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// ContainerURL returns the URL of a container, for
// container.NewClientWithNoCredential.
func (s *Server) ContainerURL(name string) string { return s.URL + "/" + name }

// Put stores a block blob, creating the container if needed.
func (s *Server) Put(container, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[container] == nil {
		s.containers[container] = map[string]*object{}
	}
	s.store(container, name, bytes.Clone(data), "application/octet-stream", nil)
}

// Get returns a blob's content and whether it exists.
func (s *Server) Get(container, name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.containers[container][name]
	if !ok {
		return nil, false
	}
	return bytes.Clone(o.data), true
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// store saves a blob; s.mu must be held.
func (s *Server) store(container, name string, data []byte, ctype string, meta http.Header) *object {
	s.seq++
	now := time.Now().UTC().Truncate(time.Second)
	sum := md5.Sum(data)
	o := &object{data: data, etag: fmt.Sprintf("0x8D%014X", s.seq), md5: sum[:], ctype: ctype, meta: meta, created: now, modified: now}
	if old := s.containers[container][name]; old != nil {
		o.created = old.created
	}
	s.containers[container][name] = o
	return o
}

// ServeHTTP implements http.Handler. Request bodies are read and response
// bodies written outside the lock, so a slow client holds up no one.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("x-ms-request-id", strconv.FormatInt(time.Now().UnixNano(), 36))
	h.Set("x-ms-version", apiVersion)
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var in []byte
	if r.Method == http.MethodPut {
		var err error
		if in, err = io.ReadAll(r.Body); err != nil {
			writeError(w, r, http.StatusBadRequest, "InvalidInput", err.Error())
			return
		}
	}
	s.mu.Lock()
	out := s.serveLocked(w, r, in)
	s.mu.Unlock()
	if len(out) > 0 && r.Method != http.MethodHead {
		w.Write(out)
	}
}

// serveLocked answers r with s.mu held: it writes the headers and status
// and returns the body to write, if any. in is a PUT's body.
func (s *Server) serveLocked(w http.ResponseWriter, r *http.Request, in []byte) []byte {
	container, name, ok := s.resolve(r.URL.Path)
	if !ok {
		writeError(w, r, http.StatusNotFound, "ContainerNotFound", "The specified container does not exist.")
		return nil
	}
	q := r.URL.Query()
	switch {
	case name == "" && r.Method == http.MethodGet && q.Get("restype") == "container" && q.Get("comp") == "list":
		return s.list(w, r, container)
	case name == "":
		writeError(w, r, http.StatusBadRequest, "UnsupportedHttpVerb", "azfake serves only List Blobs on a container.")
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return s.get(w, r, container, name)
	case r.Method == http.MethodPut && q.Get("comp") == "block":
		s.putBlock(w, r, container, name, in)
	case r.Method == http.MethodPut && q.Get("comp") == "blocklist":
		s.putBlockList(w, r, container, name, in)
	case r.Method == http.MethodPut && q.Get("comp") == "":
		s.putBlob(w, r, container, name, in)
	case r.Method == http.MethodDelete:
		s.stats.Deletes++
		if _, ok := s.containers[container][name]; !ok {
			writeError(w, r, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
			return nil
		}
		delete(s.containers[container], name)
		w.WriteHeader(http.StatusAccepted)
	default:
		writeError(w, r, http.StatusBadRequest, "UnsupportedHttpVerb", "azfake does not serve "+r.Method+" "+r.URL.RawQuery)
	}
	return nil
}

// resolve splits a request path into container and blob name. The first
// segment is the container if one has that name; otherwise it is taken as
// the account (the local-emulator style) and the second is the container.
func (s *Server) resolve(path string) (container, name string, ok bool) {
	segs := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 3)
	if _, ok := s.containers[segs[0]]; ok {
		return segs[0], strings.Join(segs[1:], "/"), true
	}
	if len(segs) >= 2 {
		if _, ok := s.containers[segs[1]]; ok {
			return segs[1], strings.Join(segs[2:], "/"), true
		}
	}
	return "", "", false
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s<Error><Code>%s</Code><Message>%s</Message></Error>", xml.Header, code, msg)
}

type enumerationResults struct {
	XMLName         xml.Name `xml:"EnumerationResults"`
	ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
	ContainerName   string   `xml:"ContainerName,attr"`
	Prefix          string   `xml:"Prefix,omitempty"`
	Marker          string   `xml:"Marker,omitempty"`
	MaxResults      int      `xml:"MaxResults"`
	Delimiter       string   `xml:"Delimiter,omitempty"`
	Blobs           struct {
		// Entries are blobXML and prefixXML values, in key order; each
		// type's XMLName names its element.
		Entries []any `xml:"x"`
	} `xml:"Blobs"`
	NextMarker string `xml:"NextMarker"`
}

type blobXML struct {
	XMLName    xml.Name `xml:"Blob"`
	Name       string   `xml:"Name"`
	Properties struct {
		CreationTime  string `xml:"Creation-Time"`
		LastModified  string `xml:"Last-Modified"`
		Etag          string `xml:"Etag"`
		ContentLength int    `xml:"Content-Length"`
		ContentType   string `xml:"Content-Type"`
		ContentMD5    string `xml:"Content-MD5"`
		BlobType      string `xml:"BlobType"`
		AccessTier    string `xml:"AccessTier"`
		LeaseStatus   string `xml:"LeaseStatus"`
		LeaseState    string `xml:"LeaseState"`
	} `xml:"Properties"`
}

type prefixXML struct {
	XMLName xml.Name `xml:"BlobPrefix"`
	Name    string   `xml:"Name"`
}

// list serves List Blobs. The marker is the key of the first entry of the
// next page (a blob name, or a BlobPrefix when a delimiter collapses names).
func (s *Server) list(w http.ResponseWriter, r *http.Request, container string) []byte {
	s.stats.Lists++
	q := r.URL.Query()
	prefix, delim, marker := q.Get("prefix"), q.Get("delimiter"), q.Get("marker")
	max := DefaultMaxResults
	if v := q.Get("maxresults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, r, http.StatusBadRequest, "OutOfRangeQueryParameterValue", "maxresults must be at least 1.")
			return nil
		}
		max = n
	}
	blobs := s.containers[container]
	names := make([]string, 0, len(blobs))
	for n := range blobs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	res := enumerationResults{ServiceEndpoint: s.URL + "/", ContainerName: container, Prefix: prefix, Marker: marker, MaxResults: max, Delimiter: delim}
	count, lastPrefix := 0, ""
	for _, n := range names {
		key, isPrefix := n, false
		if delim != "" {
			if i := strings.Index(n[len(prefix):], delim); i >= 0 {
				key, isPrefix = n[:len(prefix)+i+len(delim)], true
			}
		}
		if key < marker || (isPrefix && key == lastPrefix) {
			continue
		}
		if count == max {
			res.NextMarker = key
			break
		}
		count++
		if isPrefix {
			lastPrefix = key
			res.Blobs.Entries = append(res.Blobs.Entries, prefixXML{Name: key})
			continue
		}
		o := blobs[n]
		b := blobXML{Name: n}
		p := &b.Properties
		p.CreationTime, p.LastModified = o.created.Format(http.TimeFormat), o.modified.Format(http.TimeFormat)
		p.Etag, p.ContentLength, p.ContentType = o.etag, len(o.data), o.ctype
		p.ContentMD5 = base64.StdEncoding.EncodeToString(o.md5)
		p.BlobType, p.AccessTier, p.LeaseStatus, p.LeaseState = "BlockBlob", "Hot", "unlocked", "available"
		res.Blobs.Entries = append(res.Blobs.Entries, b)
	}
	out, err := xml.Marshal(res)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
		return nil
	}
	w.Header().Set("Content-Type", "application/xml")
	return append([]byte(xml.Header), out...)
}

// get serves Get Blob and Get Blob Properties.
func (s *Server) get(w http.ResponseWriter, r *http.Request, container, name string) []byte {
	if r.Method == http.MethodHead {
		s.stats.Heads++
	} else {
		s.stats.Gets++
	}
	o, ok := s.containers[container][name]
	if !ok {
		writeError(w, r, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return nil
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && strings.Trim(m, `"`) != o.etag {
		writeError(w, r, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
		return nil
	}
	h := w.Header()
	h.Set("ETag", `"`+o.etag+`"`)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("x-ms-creation-time", o.created.Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-lease-state", "available")
	h.Set("x-ms-lease-status", "unlocked")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", o.ctype)
	for k, v := range o.meta {
		h[k] = v
	}
	size := int64(len(o.data))
	spec := r.Header.Get("x-ms-range")
	if spec == "" {
		spec = r.Header.Get("Range")
	}
	if spec == "" || r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-MD5", base64.StdEncoding.EncodeToString(o.md5))
		w.WriteHeader(http.StatusOK)
		return o.data // never modified: a new Put stores a new object
	}
	s.stats.RangeGets++
	start, end, ok := parseRange(spec, size)
	if !ok {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeError(w, r, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
		return nil
	}
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	w.WriteHeader(http.StatusPartialContent)
	return o.data[start:end]
}

// parseRange parses "bytes=START-" or "bytes=START-END" (inclusive END) into
// the half-open [start, end) clipped to size. A range starting at or past
// the end is unsatisfiable, as in Azure.
func parseRange(spec string, size int64) (start, end int64, ok bool) {
	v, found := strings.CutPrefix(spec, "bytes=")
	a, b, dash := strings.Cut(v, "-")
	if !found || !dash {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end = size
	if b != "" {
		last, err := strconv.ParseInt(b, 10, 64)
		if err != nil || last < start {
			return 0, 0, false
		}
		end = min(last+1, size)
	}
	return start, end, true
}

// putBlob serves Put Blob.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, container, name string, data []byte) {
	s.stats.Puts++
	if t := r.Header.Get("x-ms-blob-type"); t != "BlockBlob" {
		writeError(w, r, http.StatusBadRequest, "InvalidHeaderValue", "azfake stores only BlockBlob, not "+strconv.Quote(t)+".")
		return
	}
	s.commit(w, r, container, name, data)
}

// putBlock serves Put Block: the block waits, uncommitted, for a block list.
func (s *Server) putBlock(w http.ResponseWriter, r *http.Request, container, name string, data []byte) {
	s.stats.Puts++
	id := r.URL.Query().Get("blockid")
	if id == "" {
		writeError(w, r, http.StatusBadRequest, "InvalidQueryParameterValue", "Put Block needs a blockid.")
		return
	}
	k := container + "/" + name
	if s.blocks[k] == nil {
		s.blocks[k] = map[string][]byte{}
	}
	s.blocks[k][id] = data
	w.WriteHeader(http.StatusCreated)
}

// putBlockList serves Put Block List over the uncommitted blocks (Latest
// and Uncommitted entries; Committed ones are not kept apart).
func (s *Server) putBlockList(w http.ResponseWriter, r *http.Request, container, name string, body []byte) {
	s.stats.Puts++
	var list struct {
		IDs []string `xml:",any"`
	}
	if err := xml.Unmarshal(body, &list); err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidXmlDocument", "The block list is not valid XML.")
		return
	}
	k := container + "/" + name
	var data []byte
	for _, id := range list.IDs {
		b, ok := s.blocks[k][id]
		if !ok {
			writeError(w, r, http.StatusBadRequest, "InvalidBlockList", "The specified block list is invalid.")
			return
		}
		data = append(data, b...)
	}
	delete(s.blocks, k)
	s.commit(w, r, container, name, data)
}

// commit stores data as the blob and answers 201 (Put Blob, Put Block List).
func (s *Server) commit(w http.ResponseWriter, r *http.Request, container, name string, data []byte) {
	if r.Header.Get("If-None-Match") == "*" {
		if _, exists := s.containers[container][name]; exists {
			writeError(w, r, http.StatusConflict, "BlobAlreadyExists", "The specified blob already exists.")
			return
		}
	}
	ctype := r.Header.Get("x-ms-blob-content-type")
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	meta := http.Header{}
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-ms-meta-") {
			meta[k] = v
		}
	}
	o := s.store(container, name, data, ctype, meta)
	h := w.Header()
	h.Set("ETag", `"`+o.etag+`"`)
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("Content-MD5", base64.StdEncoding.EncodeToString(o.md5))
	h.Set("x-ms-request-server-encrypted", "true")
	w.WriteHeader(http.StatusCreated)
}
