package zkclient

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// NodeState is the state of a node record.
type NodeState string

// Node states, as stored in the "state" key.
const (
	NodeInit     NodeState = "init"
	NodeBuilding NodeState = "building"
	NodeTesting  NodeState = "testing"
	NodeReady    NodeState = "ready"
	NodeInUse    NodeState = "in-use"
	NodeUsed     NodeState = "used"
	NodeHold     NodeState = "hold"
	NodeDeleting NodeState = "deleting"
	NodeFailed   NodeState = "failed"
	NodeAborted  NodeState = "aborted"
	NodeDeleted  NodeState = "deleted"
)

// NodeStates lists every valid node state in upstream's order.
var NodeStates = []NodeState{NodeBuilding, NodeTesting, NodeReady, NodeInUse, NodeUsed,
	NodeHold, NodeDeleting, NodeFailed, NodeInit, NodeAborted, NodeDeleted}

// Valid reports whether s is one of the node states of the protocol.
func (s NodeState) Valid() bool {
	for _, v := range NodeStates {
		if s == v {
			return true
		}
	}
	return false
}

// Node is the record stored at /nodepool/nodes/<id>. String fields that
// are null on the wire are empty here; an empty string is written as null.
type Node struct {
	ID             string             // znode name, not part of the payload
	Version        int32              // znode data version when read
	State          NodeState          // required
	StateTime      float64            // last state change (Unix seconds)
	Cloud          string             // cloud name reported by the driver
	Provider       string             // the provider that owns it
	Pool           string             // its pool
	Type           []string           // labels
	AllocatedTo    string             // id of the request it is assigned to
	AZ             string             // availability zone
	Region         string             // cloud region
	PublicIPv4     string             // public IPv4 address
	PrivateIPv4    string             // private IPv4 address
	PublicIPv6     string             // public IPv6 address
	HostID         string             // hypervisor (or Kubernetes node) id
	InterfaceIP    string             // the address Zuul connects to
	ConnectionPort json.RawMessage    // a number, or an object for kubectl-style connections
	ImageID        string             // upload znode path (diskimages) or cloud-image name
	Launcher       string             // id of the pool worker that created it
	CreatedTime    float64            // creation time (Unix seconds)
	ExternalID     string             // the cloud's instance id
	Hostname       string             // host name of the instance
	Comment        string             // free text, e.g. a Zuul autohold reason
	UserData       json.RawMessage    // what the requestor stored (Zuul; metastatic: a JSON string)
	HoldJob        string             // the Zuul autohold key of a held node
	HostKeys       []string           // SSH host keys, one "type base64" line each
	Username       string             // login user
	ConnectionType string             // "ssh", "winrm", "kubectl", ...
	ShellType      string             // shell-type for Zuul ("" = default)
	HoldExpiration *int               // seconds a held node may live (nil: no limit)
	Resources      map[string]float64 // what it consumes, for tenant quota
	Slot           *int               // slot index on a shared host
	Attributes     json.RawMessage    // the pool's node-attributes
	PythonPath     string             // python-path for Zuul
	TenantName     string             // Zuul tenant, copied from the request
	DriverData     json.RawMessage    // the driver's private data
	Requestor      string             // copied from the request
	Extra          []Member           // keys written by others, preserved on rewrite
}

// Port returns the numeric connection port, or 0 when it is an object.
func (n *Node) Port() int {
	var p int
	if err := json.Unmarshal(n.ConnectionPort, &p); err != nil {
		var f float64
		if json.Unmarshal(n.ConnectionPort, &f) == nil {
			return int(f)
		}
		return 0
	}
	return p
}

// SetPort sets a numeric connection port.
func (n *Node) SetPort(p int) { n.ConnectionPort = json.RawMessage(strconv.Itoa(p)) }

// HasLabel reports whether the node's type list contains label.
func (n *Node) HasLabel(label string) bool {
	for _, t := range n.Type {
		if t == label {
			return true
		}
	}
	return false
}

// Clone returns a deep copy of the node.
func (n *Node) Clone() *Node {
	c := *n
	c.Type = append([]string(nil), n.Type...)
	c.HostKeys = append([]string(nil), n.HostKeys...)
	c.Extra = append([]Member(nil), n.Extra...)
	if n.Resources != nil {
		c.Resources = make(map[string]float64, len(n.Resources))
		for k, v := range n.Resources {
			c.Resources[k] = v
		}
	}
	if n.HoldExpiration != nil {
		v := *n.HoldExpiration
		c.HoldExpiration = &v
	}
	if n.Slot != nil {
		v := *n.Slot
		c.Slot = &v
	}
	return &c
}

// MarshalJSON encodes the node with nodepool's key order and Python's
// separators; keys added by other writers follow.
func (n *Node) MarshalJSON() ([]byte, error) {
	return n.AppendJSON(make([]byte, 0, 1024)), nil
}

// AppendJSON appends the encoded node to dst.
func (n *Node) AppendJSON(dst []byte) []byte {
	o := pyjson.NewObject(dst)
	o.Str("state", string(n.State))
	o.NullFloat("state_time", n.StateTime)
	o.NullStr("cloud", n.Cloud)
	o.NullStr("provider", n.Provider)
	o.NullStr("pool", n.Pool)
	o.Strings("type", n.Type)
	o.NullStr("allocated_to", n.AllocatedTo)
	o.NullStr("az", n.AZ)
	o.NullStr("region", n.Region)
	o.NullStr("public_ipv4", n.PublicIPv4)
	o.NullStr("private_ipv4", n.PrivateIPv4)
	o.NullStr("public_ipv6", n.PublicIPv6)
	o.NullStr("host_id", n.HostID)
	o.NullStr("interface_ip", n.InterfaceIP)
	port := n.ConnectionPort
	if len(port) == 0 {
		port = json.RawMessage("22")
	}
	o.Raw("connection_port", port)
	o.Raw("ssh_port", port)
	o.NullStr("image_id", n.ImageID)
	o.NullStr("launcher", n.Launcher)
	o.NullFloat("created_time", n.CreatedTime)
	o.NullStr("external_id", n.ExternalID)
	o.NullStr("hostname", n.Hostname)
	o.NullStr("comment", n.Comment)
	o.Raw("user_data", n.UserData)
	o.NullStr("hold_job", n.HoldJob)
	o.Strings("host_keys", n.HostKeys)
	o.NullStr("username", n.Username)
	o.NullStr("connection_type", n.ConnectionType)
	o.NullStr("shell_type", n.ShellType)
	o.NullInt("hold_expiration", n.HoldExpiration)
	o.Numbers("resources", n.Resources, "cores", "instances", "ram")
	o.NullInt("slot", n.Slot)
	o.Raw("attributes", n.Attributes)
	o.NullStr("python_path", n.PythonPath)
	o.NullStr("tenant_name", n.TenantName)
	o.Raw("driver_data", n.DriverData)
	o.NullStr("requestor", n.Requestor)
	appendExtras(o, n.Extra)
	return o.Bytes()
}

// UnmarshalJSON decodes a node payload with the reading rules of the
// protocol: defaults for absent keys, a bare-string type, numeric
// coercion of hold_expiration, and unknown keys kept in Extra.
func (n *Node) UnmarshalJSON(data []byte) error {
	id, version := n.ID, n.Version
	*n = Node{ID: id, Version: version, Username: "zuul"}
	var sshPort json.RawMessage
	haveState := false
	err := eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "state":
			haveState = true
			var s string
			if err := str(raw, &s); err != nil {
				return err
			}
			n.State = NodeState(s)
		case "state_time":
			return num(raw, &n.StateTime)
		case "cloud":
			return str(raw, &n.Cloud)
		case "provider":
			return str(raw, &n.Provider)
		case "pool":
			return str(raw, &n.Pool)
		case "type":
			if !isNull(raw) && raw[0] == '"' {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return err
				}
				n.Type = nil
				if s != "" {
					n.Type = []string{s}
				}
				return nil
			}
			return strList(raw, &n.Type)
		case "allocated_to":
			return str(raw, &n.AllocatedTo)
		case "az":
			return str(raw, &n.AZ)
		case "region":
			return str(raw, &n.Region)
		case "public_ipv4":
			return str(raw, &n.PublicIPv4)
		case "private_ipv4":
			return str(raw, &n.PrivateIPv4)
		case "public_ipv6":
			return str(raw, &n.PublicIPv6)
		case "host_id":
			return str(raw, &n.HostID)
		case "interface_ip":
			return str(raw, &n.InterfaceIP)
		case "connection_port":
			n.ConnectionPort = rawValue(raw)
		case "ssh_port":
			sshPort = rawValue(raw)
		case "image_id":
			return str(raw, &n.ImageID)
		case "launcher":
			return str(raw, &n.Launcher)
		case "created_time":
			return num(raw, &n.CreatedTime)
		case "external_id":
			return str(raw, &n.ExternalID)
		case "hostname":
			return str(raw, &n.Hostname)
		case "comment":
			return str(raw, &n.Comment)
		case "user_data":
			n.UserData = rawValue(raw)
		case "hold_job":
			return str(raw, &n.HoldJob)
		case "host_keys":
			return strList(raw, &n.HostKeys)
		case "username":
			return str(raw, &n.Username)
		case "connection_type":
			return str(raw, &n.ConnectionType)
		case "shell_type":
			return str(raw, &n.ShellType)
		case "hold_expiration":
			// Python coerces with int(); anything int() rejects means 0.
			if isNull(raw) {
				n.HoldExpiration = nil
				return nil
			}
			v, _ := pyInt(raw)
			n.HoldExpiration = &v
		case "resources":
			return numbers(raw, &n.Resources)
		case "slot":
			return optInt(raw, &n.Slot)
		case "attributes":
			n.Attributes = rawValue(raw)
		case "python_path":
			return str(raw, &n.PythonPath)
		case "tenant_name":
			return str(raw, &n.TenantName)
		case "driver_data":
			n.DriverData = rawValue(raw)
		case "requestor":
			return str(raw, &n.Requestor)
		default:
			n.Extra = append(n.Extra, Member{Key: key, Value: rawValue(raw)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveState {
		return fmt.Errorf("node has no state")
	}
	if !n.State.Valid() {
		return fmt.Errorf("unknown node state %q", n.State)
	}
	if len(n.ConnectionPort) == 0 {
		n.ConnectionPort = sshPort
	}
	if len(n.ConnectionPort) == 0 {
		n.ConnectionPort = json.RawMessage("22")
	}
	return nil
}

// DecodeNode decodes a node payload read from the znode named id.
func DecodeNode(id string, data []byte) (*Node, error) {
	n := &Node{ID: id}
	if err := n.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return n, nil
}

// StaticLauncher is the launcher field of the node records of registered
// hosts (static and similar drivers): they are no launcher's launches.
const StaticLauncher = "static driver"
