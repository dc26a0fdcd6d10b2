package httpapi_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/httpapi/httpapitest"
)

// TestTokenUploads: an API token authenticates uploads as a bearer token
// and as the password of HTTP Basic credentials (builder's upload) with
// its user's name; it is held to its jobs; a wrong name with it, a wrong
// or revoked token are 401; only an administrator's token made as one
// registers keys; the verifying client sends it.
func TestTokenUploads(t *testing.T) {
	l, srv := uploadServer(t, 1<<20)
	users := auth.New(l.DB)
	tok, info, err := users.AddToken("farm", "ci", []string{"hello"}, false)
	if err != nil {
		t.Fatal(err)
	}
	image := bytes.Repeat([]byte("unikernel "), 100)
	u := srv.URL + "/job/hello/platform/debian-12/upload?binary_name=hello.hvt"
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	wrong := tok[:len(tok)-2] + "xx"
	if strings.HasSuffix(tok, "xx") {
		wrong = tok[:len(tok)-2] + "yy"
	}
	for _, c := range []struct {
		name, url, user, pw string
		hdr                 map[string]string
		status              int
		want                string
	}{
		{"bearer", u, "", "", bearer, 201, ""},
		{"basic, the token's user", u, "farm", tok, nil, 201, ""},
		{"basic, another user", u, "alice", tok, nil, 401, "wrong user name or password"},
		{"another job", srv.URL + "/job/other/platform/debian-12/upload", "", "", bearer, 403, "may only upload to hello"},
		{"a wrong token", u, "", "", map[string]string{"Authorization": "Bearer " + wrong}, 401, "wrong"},
		{"not a token", u, "", "", map[string]string{"Authorization": "Bearer farm-password"}, 401, "wrong"},
	} {
		resp, body := post(t, c.url, c.user, c.pw, image, c.hdr)
		if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, body, c.status, c.want)
		}
	}
	if err := users.RevokeToken(info.ID); err != nil {
		t.Fatal(err)
	}
	if resp, body := post(t, u, "", "", image, bearer); resp.StatusCode != 401 {
		t.Errorf("a revoked token: %d %q", resp.StatusCode, body)
	}
}

// TestTokenAdmin: key registration takes an administrator's token made as
// one, not an administrator's upload token; the client sends a token
// given as the password with no user as a bearer token.
func TestTokenAdmin(t *testing.T) {
	s := httpapitest.New(t)
	users := auth.New(s.L.DB)
	upload, _, err := users.AddToken(httpapitest.Admin.User, "uploads", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := users.AddToken(httpapitest.Admin.User, "keys", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := attest.GenerateKey(attest.ECDSAP256)
	k, _ := attest.LoadSigner(p, nil)
	ctx := context.Background()
	if _, err := s.Client.AddKey(ctx, "r1", string(k.PublicKeyPEM()), httpapi.Credentials{Password: upload}); err == nil || !strings.Contains(err.Error(), "administrator") {
		t.Fatalf("an upload token registers keys: %v", err)
	}
	if _, err := s.Client.AddKey(ctx, "r1", string(k.PublicKeyPEM()), httpapi.Credentials{Password: admin}); err != nil {
		t.Fatalf("an administrator's token: %v", err)
	}
}
