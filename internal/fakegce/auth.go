package fakegce

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"
)

// authority plays Google's OAuth2 token endpoint for one service account:
// it checks the signed JWT assertion of a token request against the
// account's public key and hands out access tokens.
type authority struct {
	key   *rsa.PrivateKey
	email string
	url   string // token endpoint

	mu     sync.Mutex
	tokens map[string]bool
	seq    int
}

func newAuthority(project string) *authority {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return &authority{key: key, email: "nodepool@" + project + ".iam.gserviceaccount.com", tokens: map[string]bool{}}
}

// verify checks a JWT signed with the service account's key and returns
// its claims.
func (a *authority) verify(jwt string) (map[string]any, bool) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&a.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(raw, &claims) != nil || claims["iss"] != a.email {
		return nil, false
	}
	if exp, ok := claims["exp"].(float64); !ok || time.Unix(int64(exp), 0).Before(time.Now()) {
		return nil, false
	}
	return claims, true
}

func (a *authority) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if _, ok := a.verify(r.PostForm.Get("assertion")); !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
		return
	}
	a.mu.Lock()
	a.seq++
	tok := fmt.Sprintf("ya29.fake-%d", a.seq)
	a.tokens[tok] = true
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
}

// valid accepts an access token it issued or a self-signed JWT of the
// service account.
func (a *authority) valid(header string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	a.mu.Lock()
	issued := a.tokens[tok]
	a.mu.Unlock()
	if issued {
		return true
	}
	_, ok = a.verify(tok)
	return ok
}

// Credentials returns a service-account key file (JSON) whose token
// endpoint is the fake's.
func (c *Cloud) Credentials() []byte {
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(c.auth.key))})
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": c.opts.Project, "private_key_id": "fakegce",
		"private_key": string(key), "client_email": c.auth.email, "client_id": "100000000000000000001",
		"token_uri": c.auth.url, "auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Endpoint returns the base URL to give the client library
// (option.WithEndpoint).
func (c *Cloud) Endpoint() string { return c.url + "/compute/v1/" }

// ClientOptions returns the options that reach the fake without
// credentials (a cloud started with NoAuth).
func (c *Cloud) ClientOptions() []option.ClientOption {
	return []option.ClientOption{option.WithEndpoint(c.Endpoint()), option.WithoutAuthentication()}
}

// Setup starts a fake cloud on an httptest server for the test and writes
// its service-account key file; it returns the cloud and the file's path.
// The server stops when the test ends.
func Setup(t testing.TB, o Options) (*Cloud, string) {
	t.Helper()
	c := New(o)
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	c.url = srv.URL
	c.auth.url = srv.URL + "/token"
	path := t.TempDir() + "/service-account.json"
	if err := os.WriteFile(path, c.Credentials(), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, path
}
