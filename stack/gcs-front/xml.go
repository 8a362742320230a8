// The XML API requests of object_store's GCS client (its src/gcp/client.rs),
// served on fakestorage's storage. Everything else goes to fakestorage.
//
//	PUT    /{bucket}/{key}                          put (x-goog-if-generation-match)
//	PUT    /{bucket}/{key}  x-goog-copy-source      copy (x-goog-if-generation-match)
//	POST   /{bucket}/{key}?uploads                  start a multipart upload
//	PUT    /{bucket}/{key}?partNumber=N&uploadId=U  one part
//	POST   /{bucket}/{key}?uploadId=U               complete (XML list of parts)
//	DELETE /{bucket}/{key}?uploadId=U               abort
//	DELETE /{bucket}/{key}                          delete (x-goog-if-generation-match)
//	GET    /{bucket}?list-type=2                    list (prefix, delimiter, start-after,
//	                                                continuation-token, max-keys)
//	GET|HEAD /{bucket}/{key}                        If-Match, If-None-Match,
//	                                                If-(Un)Modified-Since and
//	                                                x-goog-if-generation-match checked
//	                                                here, then served by fakestorage
//
// Keys arrive percent-encoded ("/" as %2F); net/http decodes the path, and a
// bucket name has no "/", so the first segment is the bucket and the rest the
// key either way.

package main

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// front routes XML API requests to its handlers, the rest to fakestorage.
type front struct {
	gcs  *fakestorage.Server
	next http.Handler
	// mu makes a condition check and the write it guards one step: writes
	// hold it, conditional reads share it.
	mu      sync.RWMutex
	uploads map[string]*upload // by upload id, under mu
}

// upload is a multipart upload in progress; its parts stay in memory.
type upload struct {
	bucket, key string
	attrs       fakestorage.ObjectAttrs
	parts       map[int][]byte
}

func newFront(gcs *fakestorage.Server) *front {
	return &front{gcs: gcs, next: gcs.HTTPHandler(), uploads: map[string]*upload{}}
}

// jsonPrefixes are fakestorage's own API paths, never a bucket.
var jsonPrefixes = []string{"/storage/", "/upload/", "/download/", "/batch/", "/_internal/"}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, ok := xmlTarget(r)
	if !ok {
		f.next.ServeHTTP(w, r)
		return
	}
	q := r.URL.Query()
	switch {
	case key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.list(w, r, bucket)
	case key == "":
		f.next.ServeHTTP(w, r) // bucket-level requests: fakestorage's
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.initiate(w, r, bucket, key)
	case r.Method == http.MethodPut && q.Has("uploadId"):
		f.putPart(w, r, bucket, key)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		f.complete(w, r, bucket, key)
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		f.abort(w, r, bucket, key)
	case r.Method == http.MethodPut && r.Header.Get("x-goog-copy-source") != "":
		f.copy(w, r, bucket, key)
	case r.Method == http.MethodPut:
		f.put(w, r, bucket, key)
	case r.Method == http.MethodDelete:
		f.delete(w, r, bucket, key)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		f.get(w, r, bucket, key)
	default:
		xmlError(w, http.StatusNotImplemented, "NotImplemented",
			fmt.Sprintf("gcs-front does not serve %s %s", r.Method, r.URL.RequestURI()))
	}
}

// xmlTarget splits a path-style XML API request into bucket and key ("" for
// a bucket-level request); ok is false for fakestorage's JSON API paths.
func xmlTarget(r *http.Request) (bucket, key string, ok bool) {
	p := r.URL.Path
	for _, prefix := range jsonPrefixes {
		if strings.HasPrefix(p, prefix) {
			return "", "", false
		}
	}
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key, bucket != ""
}

// ---------------------------------------------------------------- errors

type xmlErrorBody struct {
	XMLName xml.Name `xml:"Error"`
	Code    string
	Message string
}

// xmlError answers as GCS's XML API does; object_store maps the status
// (404 NotFound, 412 Precondition, 304 NotModified).
func xmlError(w http.ResponseWriter, status int, code, message string) {
	body, _ := xml.Marshal(xmlErrorBody{Code: code, Message: message})
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func writeXML(w http.ResponseWriter, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

// ------------------------------------------------------------ conditions

// stat gives the live object's attributes, or nil if there is none.
func (f *front) stat(bucket, key string) *fakestorage.ObjectAttrs {
	obj, err := f.gcs.GetObjectStreaming(bucket, key)
	if err != nil {
		return nil
	}
	_ = obj.Close()
	return &obj.ObjectAttrs
}

func (f *front) bucketExists(bucket string) bool {
	_, err := f.gcs.Backend().GetBucket(bucket)
	return err == nil
}

// writeAllowed checks a write's preconditions against the live object
// (nil: none), and answers the request itself when they fail.
func writeAllowed(w http.ResponseWriter, r *http.Request, cur *fakestorage.ObjectAttrs) bool {
	for _, h := range []string{"x-goog-if-metageneration-match", "x-goog-copy-source-if-generation-match",
		"x-goog-copy-source-if-metageneration-match", "x-goog-copy-source-if-match",
		"x-goog-copy-source-if-none-match"} {
		if r.Header.Get(h) != "" {
			xmlError(w, http.StatusNotImplemented, "NotImplemented", "gcs-front does not check "+h)
			return false
		}
	}
	want := r.Header.Get("x-goog-if-generation-match")
	if want == "" {
		return true
	}
	n, err := strconv.ParseInt(want, 10, 64)
	if err != nil {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "x-goog-if-generation-match: "+want)
		return false
	}
	var have int64 // 0: no live object, as GCS counts it
	if cur != nil {
		have = cur.Generation
	}
	if n != have {
		xmlError(w, http.StatusPreconditionFailed, "PreconditionFailed",
			fmt.Sprintf("At least one of the pre-conditions you specified did not hold (generation %d, asked %d).", have, n))
		return false
	}
	return true
}

func quoted(etag string) string { return `"` + strings.Trim(etag, `"`) + `"` }

// etagMatches: does a header's list of ETags (or *) name etag?
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || strings.Trim(t, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

// ----------------------------------------------------------------- reads

func (f *front) get(w http.ResponseWriter, r *http.Request, bucket, key string) {
	h := r.Header
	if h.Get("If-Match") == "" && h.Get("If-None-Match") == "" && h.Get("If-Modified-Since") == "" &&
		h.Get("If-Unmodified-Since") == "" && h.Get("x-goog-if-generation-match") == "" {
		f.next.ServeHTTP(w, r)
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	cur := f.stat(bucket, key)
	if cur == nil || r.URL.Query().Get("generation") != "" {
		f.next.ServeHTTP(w, r) // its 404, or its generation lookup
		return
	}
	if !writeAllowed(w, r, cur) {
		return
	}
	updated := cur.Updated.Truncate(time.Second)
	if v := h.Get("If-Match"); v != "" && !etagMatches(v, cur.Etag) {
		xmlError(w, http.StatusPreconditionFailed, "PreconditionFailed", "If-Match: "+v)
		return
	}
	if v := h.Get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && updated.After(t) {
			xmlError(w, http.StatusPreconditionFailed, "PreconditionFailed", "If-Unmodified-Since: "+v)
			return
		}
	}
	if v := h.Get("If-None-Match"); v != "" && etagMatches(v, cur.Etag) {
		w.Header().Set("ETag", quoted(cur.Etag))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if v := h.Get("If-Modified-Since"); v != "" && h.Get("If-None-Match") == "" {
		if t, err := http.ParseTime(v); err == nil && !updated.After(t) {
			w.Header().Set("ETag", quoted(cur.Etag))
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

type listEntry struct {
	Key          string
	Generation   int64
	LastModified string
	ETag         string
	Size         int64
}

type listPrefix struct{ Prefix string }

type listResult struct {
	XMLName               xml.Name `xml:"ListBucketResult"`
	Xmlns                 string   `xml:"xmlns,attr"`
	Name                  string
	Prefix                string
	Delimiter             string `xml:",omitempty"`
	StartAfter            string `xml:",omitempty"`
	ContinuationToken     string `xml:",omitempty"`
	KeyCount              int
	MaxKeys               int
	IsTruncated           bool
	NextContinuationToken string `xml:",omitempty"`
	// All objects, then all prefixes: object_store's XML reader does not
	// take the two interleaved.
	Contents       []listEntry
	CommonPrefixes []listPrefix
}

// list serves ListObjectsV2: keys and common prefixes in one sorted
// sequence, max-keys of them per page (1000 at most, as GCS), each prefix
// counting as one. The continuation token names the last entry returned.
func (f *front) list(w http.ResponseWriter, r *http.Request, bucket string) {
	q := r.URL.Query()
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			xmlError(w, http.StatusBadRequest, "InvalidArgument", "max-keys: "+v)
			return
		}
		maxKeys = min(n, 1000)
	}
	after := q.Get("start-after")
	afterPrefix := false // whether `after` is a common prefix: skip all under it
	token := q.Get("continuation-token")
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		kind, last, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || (kind != "k" && kind != "p") {
			xmlError(w, http.StatusBadRequest, "InvalidArgument", "continuation-token: "+token)
			return
		}
		if last > after {
			after, afterPrefix = last, kind == "p"
		}
	}
	if !f.bucketExists(bucket) {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return
	}
	objs, _, err := f.gcs.ListObjectsWithOptions(bucket, fakestorage.ListOptions{Prefix: prefix})
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })

	res := listResult{
		Xmlns: "http://doc.s3.amazonaws.com/2006-03-01", Name: bucket, Prefix: prefix,
		Delimiter: delim, StartAfter: q.Get("start-after"), ContinuationToken: token, MaxKeys: maxKeys,
	}
	lastPrefix, lastEntry := "", ""
	for _, o := range objs {
		if o.Name <= after || (afterPrefix && strings.HasPrefix(o.Name, after)) {
			continue
		}
		if !strings.HasPrefix(o.Name, prefix) {
			continue
		}
		common := ""
		if delim != "" {
			if i := strings.Index(o.Name[len(prefix):], delim); i >= 0 {
				common = o.Name[:len(prefix)+i+len(delim)]
			}
		}
		if common != "" && common == lastPrefix {
			continue // already counted
		}
		if res.KeyCount == maxKeys {
			res.IsTruncated = true
			res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(lastEntry))
			break
		}
		res.KeyCount++
		if common != "" {
			lastPrefix = common
			lastEntry = "p:" + common
			res.CommonPrefixes = append(res.CommonPrefixes, listPrefix{common})
			continue
		}
		lastEntry = "k:" + o.Name
		res.Contents = append(res.Contents, listEntry{
			Key: o.Name, Generation: o.Generation, Size: o.Size, ETag: quoted(o.Etag),
			LastModified: o.Updated.UTC().Format("2006-01-02T15:04:05.000Z"),
		})
	}
	writeXML(w, res)
}

// ---------------------------------------------------------------- writes

// attrsOf takes an object's attributes from a write's headers.
func attrsOf(r *http.Request, bucket, key string) fakestorage.ObjectAttrs {
	a := fakestorage.ObjectAttrs{
		BucketName:         bucket,
		Name:               key,
		ContentType:        r.Header.Get("Content-Type"),
		ContentEncoding:    r.Header.Get("Content-Encoding"),
		ContentDisposition: r.Header.Get("Content-Disposition"),
		ContentLanguage:    r.Header.Get("Content-Language"),
		CacheControl:       r.Header.Get("Cache-Control"),
		StorageClass:       r.Header.Get("x-goog-storage-class"),
	}
	for name, values := range r.Header {
		if k, ok := strings.CutPrefix(strings.ToLower(name), "x-goog-meta-"); ok && len(values) > 0 {
			if a.Metadata == nil {
				a.Metadata = map[string]string{}
			}
			a.Metadata[k] = values[0]
		}
	}
	return a
}

// store writes an object (under mu) and sets the response headers
// object_store reads back: ETag and x-goog-generation.
func (f *front) store(w http.ResponseWriter, attrs fakestorage.ObjectAttrs, content []byte) (*fakestorage.ObjectAttrs, bool) {
	attrs.Generation, attrs.Etag, attrs.Md5Hash, attrs.Crc32c = 0, "", "", ""
	attrs.Created, attrs.Updated = time.Time{}, time.Time{}
	obj := fakestorage.Object{ObjectAttrs: attrs, Content: content}
	if err := f.gcs.CreateObjectStreaming(obj.StreamingObject()); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return nil, false
	}
	cur := f.stat(attrs.BucketName, attrs.Name)
	if cur == nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", "the object was written but cannot be read back")
		return nil, false
	}
	w.Header().Set("ETag", quoted(cur.Etag))
	w.Header().Set("x-goog-generation", strconv.FormatInt(cur.Generation, 10))
	w.Header().Set("x-goog-metageneration", "1")
	w.Header().Set("x-goog-hash", fmt.Sprintf("crc32c=%s,md5=%s", cur.Crc32c, cur.Md5Hash))
	return cur, true
}

// writable checks the bucket and the write's preconditions (under mu), and
// gives the live object (nil: none).
func (f *front) writable(w http.ResponseWriter, r *http.Request, bucket, key string) (*fakestorage.ObjectAttrs, bool) {
	if !f.bucketExists(bucket) {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return nil, false
	}
	cur := f.stat(bucket, key)
	return cur, writeAllowed(w, r, cur)
}

func (f *front) put(w http.ResponseWriter, r *http.Request, bucket, key string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		xmlError(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.writable(w, r, bucket, key); !ok {
		return
	}
	if _, ok := f.store(w, attrsOf(r, bucket, key), body); ok {
		w.WriteHeader(http.StatusOK)
	}
}

type copyResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	LastModified string
	ETag         string
}

func (f *front) copy(w http.ResponseWriter, r *http.Request, bucket, key string) {
	src, err := url.PathUnescape(r.Header.Get("x-goog-copy-source"))
	if err != nil {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "x-goog-copy-source: "+err.Error())
		return
	}
	srcBucket, srcKey, _ := strings.Cut(strings.TrimPrefix(src, "/"), "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	from, err := f.gcs.GetObject(srcBucket, srcKey)
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist: "+src)
		return
	}
	if _, ok := f.writable(w, r, bucket, key); !ok {
		return
	}
	attrs := from.ObjectAttrs // x-goog-metadata-directive COPY, GCS's default
	attrs.BucketName, attrs.Name = bucket, key
	cur, ok := f.store(w, attrs, from.Content)
	if !ok {
		return
	}
	writeXML(w, copyResult{LastModified: cur.Updated.UTC().Format(time.RFC3339), ETag: quoted(cur.Etag)})
}

func (f *front) delete(w http.ResponseWriter, r *http.Request, bucket, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.writable(w, r, bucket, key)
	if !ok {
		return
	}
	if cur == nil {
		xmlError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	if err := f.gcs.Backend().DeleteObject(bucket, key); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ------------------------------------------------------------- multipart

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Bucket   string
	Key      string
	UploadId string
}

func (f *front) initiate(w http.ResponseWriter, r *http.Request, bucket, key string) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	uploadID := hex.EncodeToString(id[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.bucketExists(bucket) {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return
	}
	f.uploads[uploadID] = &upload{bucket: bucket, key: key, attrs: attrsOf(r, bucket, key), parts: map[int][]byte{}}
	writeXML(w, initiateResult{Bucket: bucket, Key: key, UploadId: uploadID})
}

// pending gives the upload the request names (under mu), or answers 404.
func (f *front) pending(w http.ResponseWriter, r *http.Request, bucket, key string) *upload {
	u := f.uploads[r.URL.Query().Get("uploadId")]
	if u == nil || u.bucket != bucket || u.key != key {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "The requested upload was not found.")
		return nil
	}
	return u
}

func partETag(b []byte) string {
	sum := md5.Sum(b)
	return quoted(hex.EncodeToString(sum[:]))
}

func (f *front) putPart(w http.ResponseWriter, r *http.Request, bucket, key string) {
	n, err := strconv.Atoi(r.URL.Query().Get("partNumber"))
	if err != nil || n < 1 || n > 10000 {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "partNumber must be 1 to 10000")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		xmlError(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pending(w, r, bucket, key)
	if u == nil {
		return
	}
	u.parts[n] = body
	w.Header().Set("ETag", partETag(body))
	w.WriteHeader(http.StatusOK)
}

type completeRequest struct {
	Parts []struct {
		PartNumber int
		ETag       string
	} `xml:"Part"`
}

type completeResult struct {
	XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
	Location string
	Bucket   string
	Key      string
	ETag     string
}

func (f *front) complete(w http.ResponseWriter, r *http.Request, bucket, key string) {
	var req completeRequest
	if err := xml.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Parts) == 0 {
		xmlError(w, http.StatusBadRequest, "MalformedXML", fmt.Sprintf("the list of parts does not parse: %v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pending(w, r, bucket, key)
	if u == nil {
		return
	}
	var content bytes.Buffer
	for i, p := range req.Parts {
		if i > 0 && p.PartNumber <= req.Parts[i-1].PartNumber {
			xmlError(w, http.StatusBadRequest, "InvalidPartOrder", "parts must be listed in ascending order")
			return
		}
		b, ok := u.parts[p.PartNumber]
		if !ok || partETag(b) != quoted(p.ETag) {
			xmlError(w, http.StatusBadRequest, "InvalidPart", fmt.Sprintf("part %d was not uploaded, or has another ETag", p.PartNumber))
			return
		}
		content.Write(b)
	}
	if _, ok := f.writable(w, r, bucket, key); !ok {
		return
	}
	cur, ok := f.store(w, u.attrs, content.Bytes())
	if !ok {
		return
	}
	delete(f.uploads, r.URL.Query().Get("uploadId"))
	writeXML(w, completeResult{Location: "/" + bucket + "/" + key, Bucket: bucket, Key: key, ETag: quoted(cur.Etag)})
}

func (f *front) abort(w http.ResponseWriter, r *http.Request, bucket, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending(w, r, bucket, key) == nil {
		return
	}
	delete(f.uploads, r.URL.Query().Get("uploadId"))
	w.WriteHeader(http.StatusNoContent)
}
