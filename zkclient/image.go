package zkclient

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// ImageState is the state of an image build or upload.
type ImageState string

// Build and upload states.
const (
	ImageBuilding  ImageState = "building"
	ImageUploading ImageState = "uploading"
	ImageReady     ImageState = "ready"
	ImageFailed    ImageState = "failed"
	ImageDeleting  ImageState = "deleting"
)

// ImageBuild is the record at /nodepool/images/<image>/builds/<build-id>.
type ImageBuild struct {
	ImageName  string     // from the path
	ID         string     // 32 lowercase hex (current) or 10 digits (legacy); opaque
	Version    int32      // znode data version when read
	State      ImageState // building, ready, failed or deleting
	StateTime  float64    // last state change (Unix seconds)
	Builder    string     // omitted when empty
	BuilderID  string     // omitted when empty
	Formats    []string   // written sorted and comma-joined, omitted when empty
	Username   string     // login user of nodes booted from the image
	PythonPath string     // python-path of such nodes
	ShellType  string     // shell-type of such nodes
	Extra      []Member   // keys written by others, preserved on rewrite
}

// NewBuildID returns a new build id: a random UUID as 32 lowercase hex digits.
func NewBuildID() string {
	u := uuid.New()
	return strings.ReplaceAll(u.String(), "-", "")
}

var buildIDRe = regexp.MustCompile(`^(?:[0-9a-f]{32}|[0-9]{10})$`)

// ValidBuildID reports whether id is a UUID-hex or legacy 10-digit build id.
func ValidBuildID(id string) bool { return buildIDRe.MatchString(id) }

// MarshalJSON encodes the build with nodepool's keys and order.
func (b *ImageBuild) MarshalJSON() ([]byte, error) {
	o := pyjson.NewObject(make([]byte, 0, 256))
	o.Str("state", string(b.State))
	o.NullFloat("state_time", b.StateTime)
	if b.Builder != "" {
		o.Str("builder", b.Builder)
	}
	if b.BuilderID != "" {
		o.Str("builder_id", b.BuilderID)
	}
	if len(b.Formats) > 0 {
		f := append([]string(nil), b.Formats...)
		sort.Strings(f)
		o.Str("formats", strings.Join(f, ","))
	}
	o.NullStr("username", b.Username)
	o.NullStr("python_path", b.PythonPath)
	o.NullStr("shell_type", b.ShellType)
	appendExtras(o, b.Extra)
	return o.Bytes(), nil
}

// UnmarshalJSON decodes a build payload with the protocol's read defaults.
func (b *ImageBuild) UnmarshalJSON(data []byte) error {
	keep := ImageBuild{ImageName: b.ImageName, ID: b.ID, Version: b.Version}
	*b = keep
	b.Username, b.PythonPath = "zuul", "/usr/bin/python2"
	haveState := false
	err := eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "state":
			haveState = true
			var s string
			if err := str(raw, &s); err != nil {
				return err
			}
			b.State = ImageState(s)
		case "state_time":
			return num(raw, &b.StateTime)
		case "builder":
			return str(raw, &b.Builder)
		case "builder_id":
			return str(raw, &b.BuilderID)
		case "formats":
			// Upstream writes a comma-joined string; a list is read too.
			// Empty names are dropped.
			var parts []string
			if !isNull(raw) && raw[0] == '[' {
				if err := strList(raw, &parts); err != nil {
					return err
				}
			} else {
				var s string
				if err := str(raw, &s); err != nil {
					return err
				}
				parts = []string{s}
			}
			b.Formats = nil
			for _, p := range parts {
				for _, f := range strings.Split(p, ",") {
					if f != "" {
						b.Formats = append(b.Formats, f)
					}
				}
			}
		case "username":
			return str(raw, &b.Username)
		case "python_path":
			return str(raw, &b.PythonPath)
		case "shell_type":
			return str(raw, &b.ShellType)
		default:
			b.Extra = append(b.Extra, Member{Key: key, Value: rawValue(raw)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveState {
		return fmt.Errorf("build has no state")
	}
	switch b.State {
	case ImageBuilding, ImageReady, ImageFailed, ImageDeleting:
	default:
		return fmt.Errorf("unknown build state %q", b.State)
	}
	return nil
}

// ImageUpload is the record at
// /nodepool/images/<image>/builds/<build>/providers/<provider>/images/<upload-id>.
type ImageUpload struct {
	ImageName    string     // from the path
	BuildID      string     // from the path
	ProviderName string     // from the path
	ID           string     // 10-digit sequence, from the path
	Version      int32      // znode data version when read
	State        ImageState // uploading, ready, failed or deleting
	StateTime    float64    // last state change (Unix seconds)
	ExternalID   string     // the cloud's image id
	ExternalName string     // the image name in the cloud
	Format       string     // the uploaded file format
	Username     string     // copied from the build
	PythonPath   string     // copied from the build
	ShellType    string     // copied from the build
	Extra        []Member   // keys written by others, preserved on rewrite
}

// Path returns the upload's znode path, which is also what a node records
// as its image_id.
func (u *ImageUpload) Path() string {
	return UploadPath(u.ImageName, u.BuildID, u.ProviderName, u.ID)
}

// MarshalJSON encodes the upload with nodepool's keys and order.
func (u *ImageUpload) MarshalJSON() ([]byte, error) {
	o := pyjson.NewObject(make([]byte, 0, 256))
	o.Str("state", string(u.State))
	o.NullFloat("state_time", u.StateTime)
	o.NullStr("external_id", u.ExternalID)
	o.NullStr("external_name", u.ExternalName)
	o.NullStr("format", u.Format)
	o.NullStr("username", u.Username)
	o.NullStr("python_path", u.PythonPath)
	o.NullStr("shell_type", u.ShellType)
	appendExtras(o, u.Extra)
	return o.Bytes(), nil
}

// UnmarshalJSON decodes an upload payload with the protocol's read defaults.
func (u *ImageUpload) UnmarshalJSON(data []byte) error {
	keep := ImageUpload{ImageName: u.ImageName, BuildID: u.BuildID, ProviderName: u.ProviderName, ID: u.ID, Version: u.Version}
	*u = keep
	u.Username, u.PythonPath = "zuul", "/usr/bin/python2"
	haveState := false
	err := eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "state":
			haveState = true
			var s string
			if err := str(raw, &s); err != nil {
				return err
			}
			u.State = ImageState(s)
		case "state_time":
			return num(raw, &u.StateTime)
		case "external_id":
			return str(raw, &u.ExternalID)
		case "external_name":
			return str(raw, &u.ExternalName)
		case "format":
			return str(raw, &u.Format)
		case "username":
			return str(raw, &u.Username)
		case "python_path":
			return str(raw, &u.PythonPath)
		case "shell_type":
			return str(raw, &u.ShellType)
		default:
			u.Extra = append(u.Extra, Member{Key: key, Value: rawValue(raw)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveState {
		return fmt.Errorf("upload has no state")
	}
	switch u.State {
	case ImageUploading, ImageReady, ImageFailed, ImageDeleting:
	default:
		return fmt.Errorf("unknown upload state %q", u.State)
	}
	return nil
}
