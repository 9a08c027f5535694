package fakeopenstack

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// call sends a request and decodes a JSON answer.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

func TestRawAPI(t *testing.T) {
	c := New(Options{BuildTime: 50 * time.Millisecond})
	srv := httptest.NewServer(c)
	defer srv.Close()
	c.SetURL(srv.URL)
	nova := srv.URL + "/compute/v2.1"

	code, body, _ := call(t, "GET", nova+"/servers/detail", "", nil)
	require.Equal(t, 401, code)
	require.Contains(t, body, "error")

	auth := map[string]any{"auth": map[string]any{"identity": map[string]any{"methods": []string{"password"},
		"password": map[string]any{"user": map[string]any{"name": "demo", "password": "wrong", "domain": map[string]any{"name": "Default"}}}}}}
	code, _, _ = call(t, "POST", c.AuthURL()+"/auth/tokens", "", auth)
	require.Equal(t, 401, code)
	auth["auth"].(map[string]any)["identity"].(map[string]any)["password"].(map[string]any)["user"].(map[string]any)["password"] = "secret"
	code, body, hdr := call(t, "POST", c.AuthURL()+"/auth/tokens", "", auth)
	require.Equal(t, 201, code)
	tok := hdr.Get("X-Subject-Token")
	require.NotEmpty(t, tok)
	require.NotEmpty(t, body["token"].(map[string]any)["catalog"])

	code, body, _ = call(t, "GET", nova+"/servers/nope", tok, nil)
	require.Equal(t, 404, code)
	require.Equal(t, "Instance nope could not be found.", body["itemNotFound"].(map[string]any)["message"])

	c.SetLimits(Limits{Instances: 0, Cores: -1, RAM: -1, Volumes: -1, VolumeGB: -1})
	create := map[string]any{"server": map[string]any{"name": "np1", "flavorRef": "1", "imageRef": c.ImageID("cirros")}}
	code, body, _ = call(t, "POST", nova+"/servers", tok, create)
	require.Equal(t, 403, code)
	require.True(t, strings.HasPrefix(body["forbidden"].(map[string]any)["message"].(string), "Quota exceeded for instances"))

	c.SetLimits(DefaultLimits)
	code, body, _ = call(t, "POST", nova+"/servers", tok, create)
	require.Equal(t, 202, code)
	id := body["server"].(map[string]any)["id"].(string)
	_, body, _ = call(t, "GET", nova+"/servers/"+id, tok, nil)
	require.Equal(t, "BUILD", body["server"].(map[string]any)["status"])
	time.Sleep(60 * time.Millisecond)
	_, body, _ = call(t, "GET", nova+"/servers/"+id, tok, nil)
	s := body["server"].(map[string]any)
	require.Equal(t, "ACTIVE", s["status"])
	require.Contains(t, s["addresses"], "private")

	code, body, _ = call(t, "DELETE", srv.URL+"/network/v2.0/floatingips/nope", tok, nil)
	require.Equal(t, 404, code)
	require.Equal(t, "FloatingIPNotFound", body["NeutronError"].(map[string]any)["type"])

	code, _, _ = call(t, "DELETE", nova+"/servers/"+id, tok, nil)
	require.Equal(t, 204, code)
	code, _, _ = call(t, "DELETE", nova+"/servers/"+id, tok, nil)
	require.Equal(t, 404, code)
	require.Empty(t, c.Ports(), "Nova's ports go with the server")
}
