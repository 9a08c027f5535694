package azure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/azure"
	"github.com/nodepool-go/nodepool/internal/fakeazure"
	"github.com/nodepool-go/nodepool/internal/testlog"
)

var transportOnce sync.Once

// newFake starts a fake Resource Manager and writes an auth file for it.
func newFake(t testing.TB) (*fakeazure.Cloud, string) {
	t.Helper()
	cloud := fakeazure.New()
	t.Cleanup(cloud.Close)
	transportOnce.Do(func() { azure.UseTestTransport(cloud.Client()) })
	auth := map[string]string{
		"clientId":                   fakeazure.ClientID,
		"clientSecret":               fakeazure.ClientSecret,
		"subscriptionId":             fakeazure.Subscription,
		"tenantId":                   fakeazure.Tenant,
		"activeDirectoryEndpointUrl": cloud.URL(),
		"resourceManagerEndpointUrl": cloud.URL(),
		"managementEndpointUrl":      "https://management.core.windows.net/",
	}
	b, _ := json.Marshal(auth)
	path := filepath.Join(t.TempDir(), "azure.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return cloud, path
}

// providerYAML is a provider on the fake; %[1]s is the auth path, %[2]s
// extra provider keys.
const providerYAML = `
name: az
driver: azure
location: centralus
resource-group: nodepool
resource-group-location: centralus
auth-path: %[1]s
network: NodePool
rate: 1000
%[2]s
cloud-images:
  - name: bionic
    username: zuul
    key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake zuul
    image-reference: {sku: 18.04-LTS, publisher: Canonical, version: latest, offer: UbuntuServer}
  - name: by-tag
    username: zuul
    image-filter: {tags: {foo: bar}}
  - name: windows
    username: foobar
    generate-password: true
    connection-type: winrm
    image-reference: {sku: 2022-datacenter-azure-edition, publisher: MicrosoftWindowsServer, version: latest, offer: WindowsServer}
diskimages:
  - name: img
    username: zuul
    tags: {provider_metadata: provider}
pools:
  - name: main
    max-servers: 10
    labels:
      - name: bionic
        cloud-image: bionic
        hardware-profile: {vm-size: Standard_B1ls}
        tags: {team: DevOps}
        dynamic-tags: {dynamic-tenant: "Tenant is {request.tenant_name}"}
        user-data: "the user data"
      - name: tagged
        cloud-image: by-tag
        hardware-profile: {vm-size: Standard_B2s}
      - name: windows
        cloud-image: windows
        hardware-profile: {vm-size: Standard_B2s}
        custom-data: "custom"
      - name: disk
        diskimage: img
        hardware-profile: {vm-size: Standard_B1ls}
`

// parse parses a provider entry.
func parse(t testing.TB, text string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	probs := &driver.Problems{}
	p := azure.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.Empty(t, probs.Errors)
	return p
}

// openFake opens an adapter on a fresh fake.
func openFake(t testing.TB, extra string) (*fakeazure.Cloud, driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	cloud, auth := newFake(t)
	cfg := parse(t, fmt.Sprintf(providerYAML, auth, extra))
	logs := &testlog.Buffer{}
	logBuffers.Store(t, logs)
	ad, err := azure.Driver{}.Open(context.Background(), cfg, driver.Env{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return cloud, ad, cfg
}

// logBuffers holds each test's adapter log.
var logBuffers sync.Map

// logsOf returns what the adapters of a test logged.
func logsOf(t testing.TB) string {
	if b, ok := logBuffers.Load(t); ok {
		return b.(*testlog.Buffer).String()
	}
	return ""
}
