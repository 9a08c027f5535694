package fakeopenstack

import "time"

// Unlimited is the value of an unlimited quota.
const Unlimited = -1

// Limits is the project's quota as Nova and Cinder report it (-1 =
// unlimited).
type Limits struct {
	Instances int
	Cores     int
	RAM       int // MB
	Volumes   int
	VolumeGB  int
}

// DefaultLimits are DevStack's default quotas.
var DefaultLimits = Limits{Instances: 10, Cores: 20, RAM: 51200, Volumes: 10, VolumeGB: 1000}

// Flavor is a Nova flavor.
type Flavor struct {
	ID    string
	Name  string
	VCPUs int
	RAM   int // MB
	Disk  int // GB
}

// DefaultFlavors are DevStack's m1 flavors.
var DefaultFlavors = []Flavor{
	{ID: "1", Name: "m1.tiny", VCPUs: 1, RAM: 512, Disk: 1},
	{ID: "2", Name: "m1.small", VCPUs: 1, RAM: 2048, Disk: 20},
	{ID: "3", Name: "m1.medium", VCPUs: 2, RAM: 4096, Disk: 40},
	{ID: "4", Name: "m1.large", VCPUs: 4, RAM: 8192, Disk: 80},
}

// Options configure a new fake cloud; zero values take defaults.
type Options struct {
	Region      string // default "RegionOne"
	ProjectID   string // default a fixed id
	ProjectName string // default "demo"
	Username    string // default "demo"
	Password    string // default "secret"
	// BuildTime is how long a server stays in BUILD (default 0: ACTIVE
	// on the first read after creation).
	BuildTime time.Duration
	// DeleteTime is how long a deleted server stays listed (task_state
	// deleting) before it is gone.
	DeleteTime time.Duration
	// Latency delays every API answer.
	Latency time.Duration
	Limits  *Limits  // default DefaultLimits
	Flavors []Flavor // default DefaultFlavors
	// AZs are the compute availability zones (default ["nova"]).
	AZs []string
	// PageSize is the most servers one /servers/detail page holds
	// (default 1000, Nova's max_limit).
	PageSize int
	// NoVolumeService leaves Cinder out of the catalog.
	NoVolumeService bool
	// ImageFormat, when set, is written as image_format into the clouds.yaml
	// entries of CloudsYAML (the builder's upload format for the cloud).
	ImageFormat string
}

// FailKind is a kind of injected server-create failure.
type FailKind int

// Injected create failures.
const (
	// FailQuota answers the create with Nova's 403 "Quota exceeded".
	FailQuota FailKind = iota + 1
	// FailError lets the create succeed; the server then goes to ERROR
	// with a "No valid host" fault.
	FailError
	// FailStuck lets the create succeed; the server stays in BUILD.
	FailStuck
	// FailServerError answers the create with a 500.
	FailServerError
	// FailUnavailable answers the create with a 503 (a busy API).
	FailUnavailable
)

// Server is a Nova server.
type Server struct {
	ID             string
	Name           string
	Status         string // BUILD, ACTIVE, ERROR
	TaskState      string // "deleting" while being deleted
	FlavorID       string
	ImageID        string // "" when booted from volume
	KeyName        string
	AZ             string
	HostID         string
	UserData       string // decoded
	ConfigDrive    bool
	Metadata       map[string]string
	SecurityGroups []string
	Networks       []string // network ids, in NIC order
	Volumes        []string // attached volume ids
	Fault          string
	Created        time.Time

	readyAt time.Time
	stuck   bool
	fail    bool
	goneAt  time.Time // deletion completes (zero: not deleting)
}

// Network is a Neutron network with one IPv4 subnet.
type Network struct {
	ID       string
	Name     string
	External bool // router:external
	SubnetID string
	Prefix   string // first two octets plus dot, e.g. "10.0."
	next     int
}

// Port is a Neutron port.
type Port struct {
	ID          string
	Name        string
	NetworkID   string
	DeviceID    string
	DeviceOwner string
	Status      string // ACTIVE, DOWN, BUILD
	MAC         string
	IP          string
	Tags        []string
}

// FloatingIP is a Neutron floating IP.
type FloatingIP struct {
	ID          string
	NetworkID   string
	Address     string
	PortID      string // "" when unattached
	FixedIP     string
	Status      string // ACTIVE, DOWN
	Description string
	Tags        []string
}

// Image is a Glance image.
type Image struct {
	ID              string
	Name            string
	Status          string // queued, active
	Visibility      string // public, private, shared, community
	DiskFormat      string
	ContainerFormat string
	Properties      map[string]string
	Size            int64
	Checksum        string // md5 of the data
	SHA512          string
	Created         time.Time
}

// Volume is a Cinder volume.
type Volume struct {
	ID                  string
	Name                string
	Size                int // GB
	Status              string
	AttachedTo          string // server id
	DeleteOnTermination bool
}

// Counters count API calls by kind.
type Counters struct {
	Auths            int
	ServerCreates    int // POST /servers answered 202
	ServerDeletes    int
	ServerLists      int // GET /servers/detail pages
	ServerGets       int
	QuotaRejections  int // creates answered 403 for quota
	FloatingIPs      int // floating IPs created
	FloatingIPDelete int
	PortDeletes      int
	ImageUploads     int
	ImageDeletes     int
	Requests         int
}

type failRule struct {
	method, contains string
	n, status        int
}
