package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// config-validate -s checks the secure file too.
func TestConfigValidateSecure(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("labels:\n  - name: ubuntu-jammy\ndiskimages:\n  - name: img\n"), 0o644))
	okSecure := filepath.Join(dir, "secure.yaml")
	require.NoError(t, os.WriteFile(okSecure, []byte("zookeeper-servers:\n  - host: zk.example.org\n"), 0o600))
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"-c", good, "-s", okSecure, "config-validate"}, &out, &errb), errb.String())

	for name, text := range map[string]string{
		"yaml":      "zookeeper-servers: [unclosed\n",
		"reference": "diskimages:\n  - name: nosuchimage\n    env-vars: {A: b}\n",
	} {
		bad := filepath.Join(dir, name+".yaml")
		require.NoError(t, os.WriteFile(bad, []byte(text), 0o600))
		errb.Reset()
		require.Equal(t, 1, run([]string{"-c", good, "-s", bad, "config-validate"}, &out, &errb), name)
		require.Contains(t, errb.String(), " ERROR nodepool.cmd.config_validator: ", name)
		require.Contains(t, errb.String(), bad, name)
	}
	errb.Reset()
	require.Equal(t, 1, run([]string{"-c", good, "-s", filepath.Join(dir, "missing.yaml"), "config-validate"}, &out, &errb))

	// A wrong value in the secure file is reported without the value.
	secret := filepath.Join(dir, "secret.yaml")
	require.NoError(t, os.WriteFile(secret, []byte("diskimages:\n  - name: img\n    env-vars: {PASSWORD: 987654321}\n"), 0o600))
	errb.Reset()
	require.Equal(t, 1, run([]string{"-c", good, "-s", secret, "config-validate"}, &out, &errb))
	require.Contains(t, errb.String(), "PASSWORD")
	require.NotContains(t, errb.String(), "987654321")
}
