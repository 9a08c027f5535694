package fakeazure

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type client struct {
	t *testing.T
	c *Cloud
}

func (cl client) do(method, path, body string) (*http.Response, map[string]any) {
	cl.t.Helper()
	url := path
	if !strings.HasPrefix(path, "https://") {
		url = cl.c.URL() + path
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(cl.t, err)
	req.Header.Set("Authorization", "Bearer fake-token-1")
	resp, err := cl.c.Client().Do(req)
	require.NoError(cl.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func rg(typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/nodepool/providers/%s/%s?api-version=x", Subscription, typ, name)
}

// Writes are asynchronous, new resources are listed late, and Azure's
// ordering rules and quota refusals hold.
func TestAsyncWritesAndConsistency(t *testing.T) {
	c := New()
	defer c.Close()
	c.SetDelays(time.Hour, 200*time.Millisecond)
	cl := client{t, c}

	resp, body := cl.do("PUT", rg("Microsoft.Network/publicIPAddresses", "p1"), `{"location":"centralus"}`)
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "no resource group yet")
	require.Equal(t, "ResourceGroupNotFound", body["error"].(map[string]any)["code"])
	c.AddGroup("nodepool", "centralus")

	resp, body = cl.do("PUT", rg("Microsoft.Network/publicIPAddresses", "p1"), `{"location":"centralus","tags":{"a":"b"}}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "Creating", body["properties"].(map[string]any)["provisioningState"])
	op := resp.Header.Get("Azure-AsyncOperation")
	require.NotEmpty(t, op)
	_, st := cl.do("GET", op, "")
	require.Equal(t, "InProgress", st["status"])
	c.Settle()
	_, st = cl.do("GET", op, "")
	require.Equal(t, "Succeeded", st["status"])

	list := rg("Microsoft.Network/publicIPAddresses", "")
	list = strings.Replace(list, "/?", "?", 1)
	require.Eventually(t, func() bool { _, l := cl.do("GET", list, ""); return len(l["value"].([]any)) == 1 }, 5*time.Second, 10*time.Millisecond)

	pipID := c.Resources("Microsoft.Network/publicIPAddresses")[0].ID
	nic := fmt.Sprintf(`{"location":"centralus","properties":{"ipConfigurations":[{"name":"c","properties":{"subnet":{"id":%q},"publicIPAddress":{"id":%q}}}]}}`,
		SubnetID("nodepool", "NodePool", "default"), pipID)
	resp, _ = cl.do("PUT", rg("Microsoft.Network/networkInterfaces", "n1"), nic)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	c.Settle()
	require.Equal(t, "Succeeded", c.Resources("Microsoft.Network/networkInterfaces")[0].State)
	resp, body = cl.do("DELETE", rg("Microsoft.Network/publicIPAddresses", "p1"), "")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "a public IP in use is not deleted")
	require.Equal(t, "PublicIPAddressCannotBeDeleted", body["error"].(map[string]any)["code"])

	c.SetQuota(-1, 0)
	vm := fmt.Sprintf(`{"location":"centralus","properties":{"hardwareProfile":{"vmSize":"Standard_B1ls"},"networkProfile":{"networkInterfaces":[{"id":%q}]}}}`,
		c.Resources("Microsoft.Network/networkInterfaces")[0].ID)
	resp, body = cl.do("PUT", rg("Microsoft.Compute/virtualMachines", "vm1"), vm)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, "OperationNotAllowed", body["error"].(map[string]any)["code"])
	require.Contains(t, body["error"].(map[string]any)["message"], "quota")

	resp, _ = cl.do("DELETE", rg("Microsoft.Compute/virtualMachines", "none"), "")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "deleting what does not exist")
}

func TestFaultsAndPaging(t *testing.T) {
	c := New()
	defer c.Close()
	c.AddGroup("nodepool", "centralus")
	c.SetDelays(0, 0)
	cl := client{t, c}
	for i := 0; i < pageSize+5; i++ {
		c.CreateTagged("Microsoft.Compute/images", "nodepool", fmt.Sprintf("img-%03d", i), nil)
	}
	list := strings.Replace(rg("Microsoft.Compute/images", ""), "/?", "?", 1)
	_, page := cl.do("GET", list, "")
	require.Len(t, page["value"], pageSize)
	_, page = cl.do("GET", page["nextLink"].(string), "")
	require.Len(t, page["value"], 5)
	require.Nil(t, page["nextLink"])

	c.Inject(Fault{Method: "GET", Path: "/images", Status: 429, Code: "TooManyRequests", Msg: "slow down", RetryAfter: 3, Times: 2})
	for i := 0; i < 2; i++ {
		resp, _ := cl.do("GET", list, "")
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "3", resp.Header.Get("Retry-After"))
	}
	resp, _ := cl.do("GET", list, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 5, c.CallsOf("GET images"))
}
