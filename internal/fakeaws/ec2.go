package fakeaws

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// serveEC2 answers one EC2 query-protocol call.
func (c *Cloud) serveEC2(w http.ResponseWriter, f url.Values) {
	action := f.Get("Action")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[action]++
	for i, ft := range c.faults {
		if ft.action == "" || ft.action == action {
			c.faults = append(c.faults[:i], c.faults[i+1:]...)
			ec2Error(w, ft.status, ft.code, ft.msg)
			return
		}
	}
	h, ok := map[string]func(http.ResponseWriter, url.Values){
		"RunInstances":                c.runInstances,
		"DescribeInstances":           c.describeInstances,
		"TerminateInstances":          c.terminateInstances,
		"DescribeInstanceTypes":       c.describeInstanceTypes,
		"DescribeImages":              c.describeImages,
		"DeregisterImage":             c.deregisterImage,
		"DescribeSnapshots":           c.describeSnapshots,
		"DeleteSnapshot":              c.deleteSnapshot,
		"DescribeVolumes":             c.describeVolumes,
		"DeleteVolume":                c.deleteVolume,
		"CreateTags":                  c.createTags,
		"ImportSnapshot":              c.importSnapshot,
		"DescribeImportSnapshotTasks": c.describeImportSnapshotTasks,
		"ImportImage":                 c.importImage,
		"DescribeImportImageTasks":    c.describeImportImageTasks,
		"RegisterImage":               c.registerImage,
	}[action]
	if !ok {
		ec2Error(w, 400, "InvalidAction", "The action "+action+" is not valid for this web service.")
		return
	}
	h(w, f)
}

func (c *Cloud) runInstances(w http.ResponseWriter, f url.Values) {
	it, ok := c.types[f.Get("InstanceType")]
	if !ok {
		ec2Error(w, 400, "InvalidParameterValue", fmt.Sprintf("Invalid value '%s' for InstanceType.", f.Get("InstanceType")))
		return
	}
	img, ok := c.images[f.Get("ImageId")]
	if !ok {
		ec2Error(w, 400, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", f.Get("ImageId")))
		return
	}
	if f.Get("MinCount") != "1" || f.Get("MaxCount") != "1" {
		ec2Error(w, 400, "InvalidParameterValue", "the fake launches one instance per call")
		return
	}
	spot := f.Get("InstanceMarketOptions.MarketType") == "spot"
	code := it.OnDemandCode
	if spot {
		code = it.SpotCode
	}
	if limit, ok := c.quotas[code]; ok && c.vcpusInUseLocked(code)+float64(it.VCPUs) > limit {
		if spot {
			ec2Error(w, 400, "MaxSpotInstanceCountExceeded", "Max spot instance count exceeded")
		} else {
			ec2Error(w, 400, "VcpuLimitExceeded", faultMessage("VcpuLimitExceeded"))
		}
		return
	}
	in := &Instance{
		ID: c.newID("i"), ImageID: img.ID, InstanceType: it.Name, KeyName: f.Get("KeyName"),
		UserData: f.Get("UserData"), IAMProfileName: f.Get("IamInstanceProfile.Name"), IAMProfileARN: f.Get("IamInstanceProfile.Arn"),
		EBSOptimized: f.Get("EbsOptimized") == "true", Spot: spot, created: time.Now(), AZ: c.opts.Region + "a",
		SubnetID:       f.Get("NetworkInterface.1.SubnetId"),
		SecurityGroups: members(f, "NetworkInterface.1.SecurityGroupId"),
		PublicIPv4:     f.Get("NetworkInterface.1.AssociatePublicIpAddress") == "true",
	}
	in.IPv6Count, _ = strconv.Atoi(f.Get("NetworkInterface.1.Ipv6AddressCount"))
	if in.SubnetID != "" {
		in.AZ = c.opts.Region + "b"
	}
	for i := 1; i <= indexes(f, "TagSpecification"); i++ {
		p := fmt.Sprintf("TagSpecification.%d", i)
		switch f.Get(p + ".ResourceType") {
		case "instance":
			in.Tags = queryTags(f, p)
		case "volume":
			in.VolumeTags = queryTags(f, p)
		}
	}
	for i := 1; i <= indexes(f, "BlockDeviceMapping"); i++ {
		p := fmt.Sprintf("BlockDeviceMapping.%d.", i)
		if f.Has(p + "Ebs.Encrypted") {
			ec2Error(w, 400, "InvalidParameterCombination", "the encrypted flag cannot be specified since device "+f.Get(p+"DeviceName")+" has a snapshot specified.")
			return
		}
		bd := BlockDevice{DeviceName: f.Get(p + "DeviceName"), SnapshotID: f.Get(p + "Ebs.SnapshotId"), VolumeType: f.Get(p + "Ebs.VolumeType"),
			DeleteOnTermination: f.Get(p+"Ebs.DeleteOnTermination") == "true"}
		bd.VolumeSize, _ = strconv.Atoi(f.Get(p + "Ebs.VolumeSize"))
		bd.IOPS, _ = strconv.Atoi(f.Get(p + "Ebs.Iops"))
		bd.Throughput, _ = strconv.Atoi(f.Get(p + "Ebs.Throughput"))
		in.BlockDevices = append(in.BlockDevices, bd)
	}
	in.PrivateIP = fmt.Sprintf("10.0.%d.%d", c.seq/250, c.seq%250+1)
	if in.PublicIPv4 {
		in.PublicIP = fmt.Sprintf("203.0.%d.%d", c.seq/250, c.seq%250+1)
	}
	if in.IPv6Count > 0 {
		in.IPv6 = fmt.Sprintf("2001:db8::%x", c.seq)
	}
	c.instances[in.ID] = in
	ec2Reply(w, "RunInstances", tx("reservationId", c.newID("r"))+tx("ownerId", "123456789012")+
		el("instancesSet", c.instanceXML(in, "pending")))
}

func (c *Cloud) instanceXML(in *Instance, state string) string {
	codes := map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}
	var nic string
	if state != "terminated" {
		var v6 string
		if in.IPv6 != "" {
			v6 = el("ipv6AddressesSet", el("item", tx("ipv6Address", in.IPv6)))
		}
		nic = el("networkInterfaceSet", el("item", tx("networkInterfaceId", "eni-"+in.ID[2:]), tx("subnetId", in.SubnetID),
			tx("privateIpAddress", in.PrivateIP), v6))
	}
	var life string
	if in.Spot {
		life = tx("instanceLifecycle", "spot")
	}
	ip, priv := in.PublicIP, in.PrivateIP
	if state == "terminated" || state == "shutting-down" {
		ip = ""
	}
	if state == "terminated" {
		priv = ""
	}
	return el("item", tx("instanceId", in.ID), tx("imageId", in.ImageID),
		el("instanceState", tx("code", itoa(codes[state])), tx("name", state)),
		tx("instanceType", in.InstanceType), tx("keyName", in.KeyName),
		tx("launchTime", in.created.UTC().Format(time.RFC3339)),
		el("placement", tx("availabilityZone", in.AZ)),
		tx("subnetId", in.SubnetID), tx("privateIpAddress", priv), tx("ipAddress", ip), life,
		tagSet(in.Tags), nic)
}

func (c *Cloud) describeInstances(w http.ResponseWriter, f url.Values) {
	ids := map[string]bool{}
	for _, id := range members(f, "InstanceId") {
		ids[id] = true
	}
	var b strings.Builder
	keys := make([]string, 0, len(c.instances))
	for id := range c.instances {
		keys = append(keys, id)
	}
	sort.Strings(keys)
	for _, id := range keys {
		in := c.instances[id]
		st := c.stateLocked(in)
		if st == "gone" || time.Now().Before(in.created.Add(c.opts.Invisible)) {
			continue
		}
		if len(ids) > 0 && !ids[id] {
			continue
		}
		b.WriteString(el("item", tx("reservationId", "r-"+id[2:]), tx("ownerId", "123456789012"), el("instancesSet", c.instanceXML(in, st))))
	}
	ec2Reply(w, "DescribeInstances", el("reservationSet", b.String()))
}

func (c *Cloud) terminateInstances(w http.ResponseWriter, f url.Values) {
	ids := members(f, "InstanceId")
	for _, id := range ids {
		if in, ok := c.instances[id]; !ok || c.stateLocked(in) == "gone" {
			ec2Error(w, 400, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
	}
	var b strings.Builder
	for _, id := range ids {
		in := c.instances[id]
		prev := c.stateLocked(in)
		if in.terminated.IsZero() {
			in.terminated = time.Now()
		}
		b.WriteString(el("item", tx("instanceId", id), el("previousState", tx("name", prev)), el("currentState", tx("name", c.stateLocked(in)))))
	}
	ec2Reply(w, "TerminateInstances", el("instancesSet", b.String()))
}

func (c *Cloud) describeInstanceTypes(w http.ResponseWriter, f url.Values) {
	var b strings.Builder
	for _, name := range members(f, "InstanceType") {
		it, ok := c.types[name]
		if !ok {
			ec2Error(w, 400, "InvalidInstanceType", fmt.Sprintf("The following supplied instance types do not exist: [%s]", name))
			return
		}
		b.WriteString(el("item", tx("instanceType", it.Name),
			el("vCpuInfo", tx("defaultVCpus", itoa(it.VCPUs)), tx("defaultCores", itoa(it.Cores))),
			el("memoryInfo", tx("sizeInMiB", itoa(it.MemoryMiB)))))
	}
	ec2Reply(w, "DescribeInstanceTypes", el("instanceTypeSet", b.String()))
}

func bdmXML(bds []BlockDevice) string {
	var b strings.Builder
	for _, bd := range bds {
		ebs := tx("snapshotId", bd.SnapshotID) + tx("volumeSize", itoa(bd.VolumeSize)) + tx("volumeType", bd.VolumeType) +
			tx("deleteOnTermination", strconv.FormatBool(bd.DeleteOnTermination)) + tx("encrypted", strconv.FormatBool(bd.Encrypted))
		if bd.IOPS > 0 {
			ebs += tx("iops", itoa(bd.IOPS))
		}
		if bd.Throughput > 0 {
			ebs += tx("throughput", itoa(bd.Throughput))
		}
		b.WriteString(el("item", tx("deviceName", bd.DeviceName), el("ebs", ebs)))
	}
	return el("blockDeviceMapping", b.String())
}

func (c *Cloud) describeImages(w http.ResponseWriter, f url.Values) {
	ids := map[string]bool{}
	for _, id := range members(f, "ImageId") {
		ids[id] = true
	}
	owners := members(f, "Owner")
	flt := filters(f)
	var b strings.Builder
	for _, img := range c.images {
		if len(ids) > 0 && !ids[img.ID] {
			continue
		}
		if len(owners) > 0 && owners[0] == "self" && img.Owner != "self" {
			continue
		}
		if !imageMatches(img, flt) {
			continue
		}
		b.WriteString(el("item", tx("imageId", img.ID), tx("name", img.Name), tx("creationDate", img.CreationDate),
			tx("imageState", "available"), tx("architecture", img.Architecture), tx("rootDeviceName", "/dev/sda1"),
			bdmXML(img.BlockDevices), tagSet(img.Tags)))
	}
	if len(ids) > 0 && b.Len() == 0 {
		ec2Error(w, 400, "InvalidAMIID.NotFound", "The image id does not exist")
		return
	}
	ec2Reply(w, "DescribeImages", el("imagesSet", b.String()))
}

func imageMatches(img *Image, flt map[string][]string) bool {
	for name, values := range flt {
		var got string
		switch {
		case name == "name":
			got = img.Name
		case name == "architecture":
			got = img.Architecture
		case strings.HasPrefix(name, "tag:"):
			got = img.Tags[strings.TrimPrefix(name, "tag:")]
		default:
			continue
		}
		ok := false
		for _, v := range values {
			ok = ok || globMatch(v, got)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (c *Cloud) deregisterImage(w http.ResponseWriter, f url.Values) {
	id := f.Get("ImageId")
	if _, ok := c.images[id]; !ok {
		ec2Error(w, 400, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", id))
		return
	}
	delete(c.images, id)
	ec2Reply(w, "DeregisterImage", tx("return", "true"))
}

func (c *Cloud) describeSnapshots(w http.ResponseWriter, f url.Values) {
	var b strings.Builder
	for _, s := range c.snapshots {
		b.WriteString(el("item", tx("snapshotId", s.ID), tx("status", "completed"), tx("volumeSize", itoa(s.VolumeSize)),
			tx("description", s.Description), tx("ownerId", "123456789012"), tagSet(s.Tags)))
	}
	ec2Reply(w, "DescribeSnapshots", el("snapshotSet", b.String()))
}

func (c *Cloud) deleteSnapshot(w http.ResponseWriter, f url.Values) {
	id := f.Get("SnapshotId")
	if _, ok := c.snapshots[id]; !ok {
		ec2Error(w, 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id))
		return
	}
	delete(c.snapshots, id)
	ec2Reply(w, "DeleteSnapshot", tx("return", "true"))
}

func (c *Cloud) describeVolumes(w http.ResponseWriter, f url.Values) {
	var b strings.Builder
	for _, v := range c.volumes {
		b.WriteString(el("item", tx("volumeId", v.ID), tx("status", "available"), tagSet(v.Tags)))
	}
	ec2Reply(w, "DescribeVolumes", el("volumeSet", b.String()))
}

func (c *Cloud) deleteVolume(w http.ResponseWriter, f url.Values) {
	id := f.Get("VolumeId")
	if _, ok := c.volumes[id]; !ok {
		ec2Error(w, 400, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id))
		return
	}
	delete(c.volumes, id)
	ec2Reply(w, "DeleteVolume", tx("return", "true"))
}

func (c *Cloud) createTags(w http.ResponseWriter, f url.Values) {
	tags := map[string]string{}
	for i := 1; i <= indexes(f, "Tag"); i++ {
		tags[f.Get(fmt.Sprintf("Tag.%d.Key", i))] = f.Get(fmt.Sprintf("Tag.%d.Value", i))
	}
	for _, id := range members(f, "ResourceId") {
		var target map[string]string
		switch {
		case c.images[id] != nil:
			if c.images[id].Tags == nil {
				c.images[id].Tags = map[string]string{}
			}
			target = c.images[id].Tags
		case c.snapshots[id] != nil:
			if c.snapshots[id].Tags == nil {
				c.snapshots[id].Tags = map[string]string{}
			}
			target = c.snapshots[id].Tags
		case c.instances[id] != nil:
			if c.instances[id].Tags == nil {
				c.instances[id].Tags = map[string]string{}
			}
			target = c.instances[id].Tags
		default:
			ec2Error(w, 400, "InvalidID", fmt.Sprintf("The ID '%s' is not valid", id))
			return
		}
		for k, v := range tags {
			target[k] = v
		}
	}
	ec2Reply(w, "CreateTags", tx("return", "true"))
}

// advanceTaskLocked finishes an import task whose time has come.
func (c *Cloud) advanceTaskLocked(t *importTask) (status, msg string) {
	if time.Now().Before(t.started.Add(c.opts.ImportTime)) {
		return "active", "converting"
	}
	if t.fail {
		return "deleted", "ClientError: Disk validation failed [Unsupported specified file format]"
	}
	if t.snapshot == "" {
		obj := c.buckets[t.bucket][t.key]
		size := 1
		if obj != nil {
			size = (len(obj.Data) + 1<<30 - 1) >> 30
			if size < 1 {
				size = 1
			}
		}
		t.snapshot = c.newID("snap")
		desc := "Created by AWS-VMImport service for " + t.id
		c.snapshots[t.snapshot] = &Snapshot{ID: t.snapshot, VolumeSize: size, Description: desc}
		if t.image {
			t.imageID = c.newID("ami")
			c.images[t.imageID] = &Image{ID: t.imageID, Name: t.id, Owner: "self", Architecture: t.arch,
				CreationDate: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
				BlockDevices: []BlockDevice{{DeviceName: "/dev/sda1", SnapshotID: t.snapshot, VolumeSize: size, VolumeType: "gp2", DeleteOnTermination: true}}}
		}
	}
	return "completed", ""
}

func (c *Cloud) startImport(w http.ResponseWriter, f url.Values, image bool) *importTask {
	prefix, kind := "DiskContainer.", "import-snapshot-task"
	if image {
		prefix, kind = "DiskContainer.1.", "import-image-task"
	}
	t := &importTask{id: c.newID("import-snap"), image: image, bucket: f.Get(prefix + "UserBucket.S3Bucket"),
		key: f.Get(prefix + "UserBucket.S3Key"), arch: f.Get("Architecture"), started: time.Now()}
	if image {
		t.id = c.newID("import-ami")
	}
	if _, ok := c.buckets[t.bucket][t.key]; !ok {
		ec2Error(w, 400, "InvalidParameter", fmt.Sprintf("The specified S3 object s3://%s/%s does not exist", t.bucket, t.key))
		return nil
	}
	for i := 1; i <= indexes(f, "TagSpecification"); i++ {
		p := fmt.Sprintf("TagSpecification.%d", i)
		if f.Get(p+".ResourceType") == kind {
			t.tags = queryTags(f, p)
		}
	}
	if c.failImp > 0 {
		c.failImp--
		t.fail = true
	}
	c.tasks[t.id] = t
	return t
}

func (c *Cloud) importSnapshot(w http.ResponseWriter, f url.Values) {
	if t := c.startImport(w, f, false); t != nil {
		ec2Reply(w, "ImportSnapshot", tx("importTaskId", t.id)+el("snapshotTaskDetail", tx("status", "active"))+tagSet(t.tags))
	}
}

func (c *Cloud) importImage(w http.ResponseWriter, f url.Values) {
	if t := c.startImport(w, f, true); t != nil {
		ec2Reply(w, "ImportImage", tx("importTaskId", t.id)+tx("status", "active")+tagSet(t.tags))
	}
}

func (c *Cloud) tasksOf(f url.Values, image bool) []*importTask {
	ids := members(f, "ImportTaskId")
	var out []*importTask
	for _, t := range c.tasks {
		if t.image != image {
			continue
		}
		if len(ids) > 0 && ids[0] != t.id {
			continue
		}
		out = append(out, t)
	}
	return out
}

func (c *Cloud) describeImportSnapshotTasks(w http.ResponseWriter, f url.Values) {
	var b strings.Builder
	for _, t := range c.tasksOf(f, false) {
		st, msg := c.advanceTaskLocked(t)
		b.WriteString(el("item", tx("importTaskId", t.id), el("snapshotTaskDetail", tx("status", st), tx("statusMessage", msg),
			tx("snapshotId", t.snapshot)), tagSet(t.tags)))
	}
	ec2Reply(w, "DescribeImportSnapshotTasks", el("importSnapshotTaskSet", b.String()))
}

func (c *Cloud) describeImportImageTasks(w http.ResponseWriter, f url.Values) {
	var b strings.Builder
	for _, t := range c.tasksOf(f, true) {
		st, msg := c.advanceTaskLocked(t)
		var snaps string
		if t.snapshot != "" {
			snaps = el("snapshotDetailSet", el("item", tx("snapshotId", t.snapshot)))
		}
		b.WriteString(el("item", tx("importTaskId", t.id), tx("status", st), tx("statusMessage", msg),
			tx("imageId", t.imageID), snaps, tagSet(t.tags)))
	}
	ec2Reply(w, "DescribeImportImageTasks", el("importImageTaskSet", b.String()))
}

func (c *Cloud) registerImage(w http.ResponseWriter, f url.Values) {
	img := &Image{ID: c.newID("ami"), Name: f.Get("Name"), Owner: "self", Architecture: f.Get("Architecture"),
		ENASupport: f.Get("EnaSupport") == "true", CreationDate: time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}
	for i := 1; i <= indexes(f, "BlockDeviceMapping"); i++ {
		p := fmt.Sprintf("BlockDeviceMapping.%d.", i)
		bd := BlockDevice{DeviceName: f.Get(p + "DeviceName"), SnapshotID: f.Get(p + "Ebs.SnapshotId"), VolumeType: f.Get(p + "Ebs.VolumeType"),
			DeleteOnTermination: f.Get(p+"Ebs.DeleteOnTermination") == "true"}
		bd.VolumeSize, _ = strconv.Atoi(f.Get(p + "Ebs.VolumeSize"))
		bd.IOPS, _ = strconv.Atoi(f.Get(p + "Ebs.Iops"))
		bd.Throughput, _ = strconv.Atoi(f.Get(p + "Ebs.Throughput"))
		if _, ok := c.snapshots[bd.SnapshotID]; bd.SnapshotID != "" && !ok {
			ec2Error(w, 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", bd.SnapshotID))
			return
		}
		img.BlockDevices = append(img.BlockDevices, bd)
	}
	c.images[img.ID] = img
	ec2Reply(w, "RegisterImage", tx("imageId", img.ID))
}
