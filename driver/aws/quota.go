package aws

import (
	"context"
	"fmt"
	"regexp"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// quotaCodes maps an instance family (the letters of an instance type's
// name before its first digit) to the EC2 service-quota codes that count
// its vCPUs: on demand, then spot ("" when AWS has none).
var familyQuotaCodes = map[string][2]string{
	"a":   {"L-1216C47A", "L-34B43A08"}, // standard (A, C, D, H, I, M, R, T, Z)
	"c":   {"L-1216C47A", "L-34B43A08"},
	"d":   {"L-1216C47A", "L-34B43A08"},
	"h":   {"L-1216C47A", "L-34B43A08"},
	"i":   {"L-1216C47A", "L-34B43A08"},
	"m":   {"L-1216C47A", "L-34B43A08"},
	"r":   {"L-1216C47A", "L-34B43A08"},
	"t":   {"L-1216C47A", "L-34B43A08"},
	"z":   {"L-1216C47A", "L-34B43A08"},
	"dl":  {"L-6E869C2A", "L-85EED4F7"},
	"f":   {"L-74FC7D96", "L-88CF9481"},
	"g":   {"L-DB2E81BA", "L-3819A6DF"},
	"vt":  {"L-DB2E81BA", "L-3819A6DF"},
	"u-":  {"L-43DA4232", ""}, // high memory
	"inf": {"L-1945791B", "L-B5D1601B"},
	"p":   {"L-417A185B", "L-7212CCBC"},
	"x":   {"L-7295265B", "L-E3A00192"},
	"trn": {"L-2C3B7624", "L-6B0D517C"},
	"hpc": {"L-F7808C92", ""},
}

var familyRE = regexp.MustCompile(`^([a-z\-]+)\d`)

// quotaCode returns the service-quota code of an instance type ("" when
// the family is unknown or has no such quota).
func quotaCode(instanceType string, spot bool) string {
	m := familyRE.FindStringSubmatch(instanceType)
	if m == nil {
		return ""
	}
	codes, ok := familyQuotaCodes[m[1]]
	if !ok {
		return ""
	}
	if spot {
		return codes[1]
	}
	return codes[0]
}

// instanceType returns an instance type's description, cached for the
// life of the adapter.
func (a *Adapter) instanceType(ctx context.Context, name string) (ec2types.InstanceTypeInfo, error) {
	a.mu.Lock()
	it, ok := a.types[name]
	a.mu.Unlock()
	if ok {
		return it, nil
	}
	out, err := a.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(name)}})
	if err != nil {
		return it, classify(err, false, "aws: describing instance type %s", name)
	}
	if len(out.InstanceTypes) == 0 || out.InstanceTypes[0].VCpuInfo == nil || out.InstanceTypes[0].MemoryInfo == nil {
		return it, fmt.Errorf("aws: instance type %s not found", name)
	}
	it = out.InstanceTypes[0]
	a.mu.Lock()
	a.types[name] = it
	a.mu.Unlock()
	return it, nil
}

// quotaFor is what one instance of the type costs: its cores, RAM, one
// instance, and its vCPUs under its family's service-quota code.
func (a *Adapter) quotaFor(ctx context.Context, instanceType string, spot bool) (quota.Resources, error) {
	it, err := a.instanceType(ctx, instanceType)
	if err != nil {
		return quota.Resources{}, err
	}
	extra := map[string]float64{}
	if code := quotaCode(instanceType, spot); code != "" {
		extra[code] = float64(awssdk.ToInt32(it.VCpuInfo.DefaultVCpus))
	}
	return quota.New(float64(awssdk.ToInt32(it.VCpuInfo.DefaultCores)), 1, float64(awssdk.ToInt64(it.MemoryInfo.SizeInMiB)), 0, extra), nil
}

// QuotaForLabel returns one node's cost by its instance type and market.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	ls := labelSettings(label)
	return a.quotaFor(ctx, ls.InstanceType, ls.UseSpot)
}

// QuotaLimits returns the Service Quotas values of the codes this
// provider's labels use (by instance family and market); everything else
// is unlimited.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	limits := quota.New(quota.Inf, quota.Inf, quota.Inf, quota.Inf, nil)
	seen := map[string]bool{}
	for _, p := range a.cfg.Pools {
		for _, l := range p.Labels {
			ls := labelSettings(l)
			code := quotaCode(ls.InstanceType, ls.UseSpot)
			if code == "" {
				if !seen["?"+ls.InstanceType] {
					a.log.Warn("unknown quota code for instance type", "instance_type", ls.InstanceType)
				}
				seen["?"+ls.InstanceType] = true
				continue
			}
			if seen[code] {
				continue
			}
			seen[code] = true
			out, err := a.quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: awssdk.String("ec2"), QuotaCode: awssdk.String(code)})
			if err != nil {
				return quota.Resources{}, classify(err, false, "aws: getting service quota %s", code)
			}
			if out.Quota != nil && out.Quota.Value != nil {
				limits.Set(code, *out.Quota.Value)
			}
		}
	}
	return limits, nil
}

func labelSettings(l *driver.LabelConfig) *LabelSettings {
	if ls, ok := l.Settings.(*LabelSettings); ok && ls != nil {
		return ls
	}
	return &LabelSettings{}
}
