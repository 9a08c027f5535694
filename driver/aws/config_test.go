package aws_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver/aws"
)

// TestValidateUpstreamFixtures checks config-validate's verdict on configs
// with the keys, values and structure of the reference implementation's
// AWS test fixtures (placeholders filled in), and on a few more.
func TestValidateUpstreamFixtures(t *testing.T) {
	valid := []string{
		"aws-limits.yaml", "aws-min-ready.yaml", "aws-multiple.yaml", "aws-quota.yaml",
		"aws-spot.yaml", "aws.yaml", "config.yaml", "diskimage-import-image.yaml",
		"diskimage.yaml", "ipv6.yaml", "non-host-key-checking.yaml", "private-ip.yaml",
		"shell-type.yaml",
	}
	for _, f := range valid {
		t.Run(f, func(t *testing.T) {
			p := nodepool.ValidateConfig(filepath.Join("testdata", "upstream", f))
			require.NoError(t, p.Err())
		})
	}
	t.Run("bad-config-images.yaml", func(t *testing.T) {
		p := nodepool.ValidateConfig(filepath.Join("testdata", "upstream", "bad-config-images.yaml"))
		err := p.Err()
		require.Error(t, err)
		require.Contains(t, err.Error(), "providers[0].cloud-images[0].image-filters: two or more values in the same group of exclusion 'spec'")
		require.Contains(t, err.Error(), "providers[0].pools[0].subnet-id: expected str, got null")
	})
}

const provider = `
labels:
  - name: small
providers:
  - name: ec2
    driver: aws
    region-name: us-east-1
%s
`

func validate(t *testing.T, body string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(sprintf(provider, body)), 0o600))
	return nodepool.ValidateConfig(path).Err()
}

func TestValidateVerdicts(t *testing.T) {
	const pools = `    pools:
      - name: main
        labels:
          - name: small
            cloud-image: ubuntu
            instance-type: t3.small
            key-name: zuul
`
	for _, tt := range []struct {
		name, body, want string
	}{
		{"image-id or filters required", "    cloud-images:\n      - {name: ubuntu, username: u}\n" + pools,
			`providers[0].cloud-images[0]: Provide either "image-filters", or "image-id" keys`},
		{"filter spelled either way", "    cloud-images:\n      - name: ubuntu\n        username: u\n        image-filters:\n          - {Name: name, values: [x]}\n          - {name: owner-id, Values: ['1']}\n" + pools, ""},
		{"filter values are strings", "    cloud-images:\n      - name: ubuntu\n        username: u\n        image-filters:\n          - {Name: name, Values: [1]}\n" + pools,
			"providers[0].cloud-images[0].image-filters[0].Values[0]: expected str"},
		{"unknown filter key", "    cloud-images:\n      - name: ubuntu\n        username: u\n        image-filters:\n          - {name: name, values: [x], owner: me}\n" + pools,
			"image-filters[0].owner: extra keys not allowed"},
		{"iam profile by name and arn", "    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools + "            iam-instance-profile: {name: a, arn: b}\n",
			"group of exclusion 'iam_instance_profile_id'"},
		{"empty iam profile", "    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools + "            iam-instance-profile: {}\n", ""},
		{"tags of any scalar", "    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools + "            tags: {a: true, b: 1, c: x}\n", ""},
		{"tags a list", "    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools + "            tags: [a]\n",
			"providers[0].pools[0].labels[0].tags: expected a dictionary"},
		{"fractional max-resources", "    max-resources: {L-1216C47A: 1.5}\n    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools,
			"providers[0].max-resources.L-1216C47A: expected int"},
		{"hostname-format", "    hostname-format: x\n    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools, ""},
		{"import-method", "    diskimages:\n      - {name: d, import-method: ebs-direct}\n    cloud-images:\n      - {name: ubuntu, username: u, image-id: ami-1}\n" + pools,
			"import-method: not a valid value: ebs-direct"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(t, tt.body)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestLoadTagsAndMaxResources(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	body := `    max-resources: {L-1216C47A: 8, L-34B43A08: 4}
    use-internal-ip: true
    cloud-images:
      - name: ubuntu
        username: ubuntu
        image-filters:
          - {Name: name, Values: ['ubuntu*']}
    pools:
      - name: main
        max-resources: {L-1216C47A: 2}
        labels:
          - name: small
            cloud-image: ubuntu
            instance-type: t3.small
            key-name: zuul
            tags: {has-tags: true, n: 3, f: 1.5, Name: ignored}
`
	require.NoError(t, os.WriteFile(path, []byte(sprintf(provider, body)), 0o600))
	cfg, err := nodepool.LoadConfig(path, "")
	require.NoError(t, err)
	p := cfg.Provider("ec2")
	pool := p.Pool("main")
	require.Equal(t, map[string]float64{"L-1216C47A": 2, "L-34B43A08": 4}, pool.MaxResources)
	require.True(t, pool.UseInternalIP)
	ls := pool.Label("small").Settings.(*aws.LabelSettings)
	require.Equal(t, map[string]string{"has-tags": "True", "n": "3", "f": "1.5", "Name": "ignored"}, ls.Tags)
	ci := p.Settings.(*aws.ProviderSettings).CloudImage("ubuntu")
	require.Equal(t, []aws.ImageFilter{{Name: "name", Values: []string{"ubuntu*"}}}, ci.ImageFilters)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
