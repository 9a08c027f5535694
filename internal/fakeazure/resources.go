package fakeazure

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Lower-case resource types.
const (
	typeVM    = "microsoft.compute/virtualmachines"
	typeDisk  = "microsoft.compute/disks"
	typeImage = "microsoft.compute/images"
	typeNIC   = "microsoft.network/networkinterfaces"
	typePIP   = "microsoft.network/publicipaddresses"
)

var typeNames = map[string]string{
	typeVM: "Microsoft.Compute/virtualMachines", typeDisk: "Microsoft.Compute/disks",
	typeImage: "Microsoft.Compute/images", typeNIC: "Microsoft.Network/networkInterfaces",
	typePIP: "Microsoft.Network/publicIPAddresses",
}

func resourceID(group, typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", Subscription, group, typ, name)
}

func vmSize(body map[string]any) string {
	hp, _ := props(body)["hardwareProfile"].(map[string]any)
	return str(hp["vmSize"])
}

func (c *Cloud) crud(w http.ResponseWriter, r *http.Request, group, typ, name string) {
	tn, ok := typeNames[typ]
	if !ok {
		armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type '"+typ+"' could not be found.")
		return
	}
	id := resourceID(group, tn, name)
	// Keep the caller's spelling of the group and name.
	parts := strings.Split(r.URL.Path, "/")
	id = resourceID(parts[4], tn, parts[8])
	key := strings.ToLower(id)
	cur := c.res[key]
	notFound := func() {
		armError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource '%s/%s' under resource group '%s' was not found.", tn, parts[8], parts[4]))
	}
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			notFound()
			return
		}
		writeJSON(w, http.StatusOK, cur.body)
	case http.MethodDelete:
		if cur == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if code, msg := c.deleteCheck(cur); code != "" {
			armError(w, http.StatusBadRequest, code, msg)
			return
		}
		if cur.deleted {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		cur.deleted = true
		props(cur.body)["provisioningState"] = "Deleting"
		op := c.startOp(func() { c.removeLocked(cur) })
		c.accepted(w, http.StatusAccepted, op, nil)
	case http.MethodPut:
		if _, ok := c.groups[strings.ToLower(parts[4])]; !ok {
			armError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", parts[4]))
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			armError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+err.Error())
			return
		}
		body["id"], body["name"], body["type"] = id, parts[8], tn
		props(body)["provisioningState"] = "Creating"
		// Managed disks answer 202 Accepted to a create, the others 201.
		status := http.StatusCreated
		if typ == typeDisk {
			status = http.StatusAccepted
		}
		if cur != nil {
			status = http.StatusOK
			props(body)["provisioningState"] = "Updating"
		}
		res := &resource{id: id, typ: typ, body: body, created: time.Now()}
		if cur != nil {
			res.created = cur.created
		}
		apply, fail, code, msg := c.createCheck(res)
		if code != "" {
			status := http.StatusConflict
			if code == "InvalidParameter" || code == "InvalidResourceReference" || code == "NotFound" {
				status = http.StatusBadRequest
			}
			armError(w, status, code, msg)
			return
		}
		c.res[key] = res
		op := c.startOp(nil)
		op.apply = func() {
			if fail != "" {
				op.code, op.msg = fail, "Allocation failed. We do not have sufficient capacity for the requested VM size in this region."
				props(res.body)["provisioningState"] = "Failed"
				return
			}
			props(res.body)["provisioningState"] = "Succeeded"
			if apply != nil {
				apply()
			}
		}
		c.accepted(w, status, op, res.body)
	default:
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// deleteCheck refuses deleting what is still in use, as Azure does.
func (c *Cloud) deleteCheck(r *resource) (code, msg string) {
	p := props(r.body)
	switch r.typ {
	case typeNIC:
		if vm, ok := p["virtualMachine"].(map[string]any); ok {
			return "NicInUse", fmt.Sprintf("Network Interface %s is used by existing resource %s. In order to delete the network interface, it must be dissociated from the resource.", r.id, str(vm["id"]))
		}
	case typePIP:
		if ipc, ok := p["ipConfiguration"].(map[string]any); ok {
			return "PublicIPAddressCannotBeDeleted", fmt.Sprintf("Public IP address %s can not be deleted since it is still allocated to resource %s.", r.id, str(ipc["id"]))
		}
	}
	return "", ""
}

// removeLocked completes a deletion.
func (c *Cloud) removeLocked(r *resource) {
	delete(c.res, strings.ToLower(r.id))
	p := props(r.body)
	switch r.typ {
	case typeVM:
		for _, ref := range nicRefs(r.body) {
			if nic := c.res[strings.ToLower(ref)]; nic != nil {
				delete(props(nic.body), "virtualMachine")
			}
		}
	case typeNIC:
		for _, ipc := range ipConfigs(p) {
			if pip, ok := props(ipc)["publicIPAddress"].(map[string]any); ok {
				if x := c.res[strings.ToLower(str(pip["id"]))]; x != nil {
					delete(props(x.body), "ipConfiguration")
				}
			}
		}
	case typeDisk:
		delete(c.blobs, strings.ToLower(str(r.body["name"])))
	}
}

func ipConfigs(p map[string]any) []map[string]any {
	l, _ := p["ipConfigurations"].([]any)
	var out []map[string]any
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func nicRefs(vm map[string]any) []string {
	np, _ := props(vm)["networkProfile"].(map[string]any)
	l, _ := np["networkInterfaces"].([]any)
	var out []string
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, str(m["id"]))
		}
	}
	return out
}

// createCheck validates a new resource. It returns what to do when the
// creation completes, an asynchronous failure code, or a synchronous
// refusal.
func (c *Cloud) createCheck(r *resource) (apply func(), fail, code, msg string) {
	p := props(r.body)
	name := str(r.body["name"])
	switch r.typ {
	case typePIP:
		if str(p["publicIPAddressVersion"]) == "" {
			p["publicIPAddressVersion"] = "IPv4"
		}
		// Static addresses are allocated with the resource, dynamic ones
		// once a VM using them runs.
		if !strings.EqualFold(str(p["publicIPAllocationMethod"]), "Static") {
			return nil, "", "", ""
		}
		return func() { c.allocatePublicLocked(r) }, "", "", ""
	case typeNIC:
		cfgs := ipConfigs(p)
		if len(cfgs) == 0 {
			return nil, "", "InvalidParameter", "Network interface must have at least one IP configuration."
		}
		var pips []*resource
		for _, ipc := range cfgs {
			ip := props(ipc)
			sn, _ := ip["subnet"].(map[string]any)
			if !c.subnets[strings.ToLower(str(sn["id"]))] {
				return nil, "", "InvalidResourceReference", fmt.Sprintf("Resource %s referenced by resource %s was not found.", str(sn["id"]), r.id)
			}
			if pr, ok := ip["publicIPAddress"].(map[string]any); ok {
				pip := c.res[strings.ToLower(str(pr["id"]))]
				if pip == nil {
					return nil, "", "InvalidResourceReference", fmt.Sprintf("Resource %s referenced by resource %s was not found.", str(pr["id"]), r.id)
				}
				pips = append(pips, pip)
			}
		}
		return func() {
			for i, ipc := range cfgs {
				ip := props(ipc)
				c.nextIP++
				if str(ip["privateIPAddressVersion"]) == "IPv6" {
					ip["privateIPAddress"] = fmt.Sprintf("fd00::%x", c.nextIP)
				} else {
					ip["privateIPAddress"] = fmt.Sprintf("10.0.%d.%d", c.nextIP/250, 4+c.nextIP%250)
				}
				ip["provisioningState"] = "Succeeded"
				_ = i
			}
			for _, pip := range pips {
				props(pip.body)["ipConfiguration"] = map[string]any{"id": r.id + "/ipConfigurations/0"}
			}
		}, "", "", ""
	case typeVM:
		sku := c.skuOf(vmSize(r.body))
		if sku == nil {
			return nil, "", "SkuNotAvailable", fmt.Sprintf("The requested VM size for resource '%s' is currently not available in location 'centralus'. Please try another size or deploy to a different location or different zone.", vmSize(r.body))
		}
		cores, vms, fam := c.usedLocked()
		if vms+1 > c.vmLimit {
			return nil, "", "OperationNotAllowed", fmt.Sprintf("Operation could not be completed as it results in exceeding approved virtualMachines quota. Current Limit: %d, Current Usage: %d, Additional Required: 1.", int(c.vmLimit), int(vms))
		}
		if cores+float64(sku.VCPUs) > c.coreLimit {
			return nil, "", "OperationNotAllowed", fmt.Sprintf("Operation could not be completed as it results in exceeding approved Total Regional Cores quota. Location: centralus, Current Limit: %d, Current Usage: %d, Additional Required: %d.", int(c.coreLimit), int(cores), sku.VCPUs)
		}
		if lim, ok := c.famLimit[sku.Family]; ok && fam[sku.Family]+float64(sku.VCPUs) > lim {
			return nil, "", "OperationNotAllowed", fmt.Sprintf("Operation could not be completed as it results in exceeding approved %s Cores quota. Location: centralus, Current Limit: %d, Current Usage: %d, Additional Required: %d.", sku.Family, int(lim), int(fam[sku.Family]), sku.VCPUs)
		}
		var nics []*resource
		for _, ref := range nicRefs(r.body) {
			nic := c.res[strings.ToLower(ref)]
			if nic == nil {
				return nil, "", "NotFound", fmt.Sprintf("Resource %s not found.", ref)
			}
			nics = append(nics, nic)
		}
		if len(nics) == 0 {
			return nil, "", "InvalidParameter", "At least one network interface is required."
		}
		sp, _ := p["storageProfile"].(map[string]any)
		ir, _ := sp["imageReference"].(map[string]any)
		if id := str(ir["id"]); strings.Contains(strings.ToLower(id), "/providers/microsoft.compute/images/") && c.res[strings.ToLower(id)] == nil {
			return nil, "", "InvalidParameter", fmt.Sprintf("The Image '%s' cannot be found in 'centralus' region.", id)
		}
		for _, nic := range nics {
			props(nic.body)["virtualMachine"] = map[string]any{"id": r.id}
		}
		if c.allocFails > 0 {
			c.allocFails--
			fail = "AllocationFailed"
		}
		disk := name + "_OsDisk_1_" + fmt.Sprintf("%08x", c.seq)
		group := groupOf(r.id)
		diskID := resourceID(group, "Microsoft.Compute/disks", disk)
		if sp == nil {
			sp = map[string]any{}
			p["storageProfile"] = sp
		}
		sp["osDisk"] = map[string]any{"name": disk, "createOption": "FromImage", "managedDisk": map[string]any{"id": diskID}}
		p["vmId"] = fmt.Sprintf("%08x-0000-4000-8000-%012x", c.seq, c.seq)
		return func() {
			for _, nic := range nics {
				for _, ipc := range ipConfigs(props(nic.body)) {
					if pr, ok := props(ipc)["publicIPAddress"].(map[string]any); ok {
						if pip := c.res[strings.ToLower(str(pr["id"]))]; pip != nil && str(props(pip.body)["ipAddress"]) == "" {
							c.allocatePublicLocked(pip)
						}
					}
				}
			}
			c.res[strings.ToLower(diskID)] = &resource{id: diskID, typ: typeDisk, created: time.Now(),
				body: map[string]any{"id": diskID, "name": disk, "type": typeNames[typeDisk], "location": r.body["location"],
					"properties": map[string]any{"provisioningState": "Succeeded", "diskState": "Attached", "diskSizeGB": 30}}}
		}, fail, "", ""
	case typeDisk:
		cd, _ := p["creationData"].(map[string]any)
		if str(cd["createOption"]) == "Upload" {
			size := int64(num(cd["uploadSizeBytes"]))
			if size <= 0 || size%512 != 0 {
				return nil, "", "InvalidParameter", "The specified uploadSizeBytes must be a multiple of 512 bytes."
			}
			p["diskSizeBytes"] = size
			p["diskState"] = "ReadyToUpload"
		}
	case typeImage:
		sp, _ := p["storageProfile"].(map[string]any)
		od, _ := sp["osDisk"].(map[string]any)
		md, _ := od["managedDisk"].(map[string]any)
		d := c.res[strings.ToLower(str(md["id"]))]
		if d == nil {
			return nil, "", "InvalidParameter", fmt.Sprintf("The managed disk %s does not exist.", str(md["id"]))
		}
		if str(props(d.body)["diskState"]) == "ActiveUpload" {
			return nil, "", "OperationNotAllowed", "The disk is being uploaded; revoke access first."
		}
		p["sourceBlob"] = len(c.blobs[strings.ToLower(str(d.body["name"]))])
	}
	return nil, "", "", ""
}

// allocatePublicLocked gives a public IP resource its address.
func (c *Cloud) allocatePublicLocked(r *resource) {
	p := props(r.body)
	c.nextIP++
	if str(p["publicIPAddressVersion"]) == "IPv6" {
		p["ipAddress"] = fmt.Sprintf("2001:db8::%x", c.nextIP)
	} else {
		p["ipAddress"] = fmt.Sprintf("203.0.%d.%d", 113+c.nextIP/250, 1+c.nextIP%250)
	}
}

// action serves POST .../disks/{name}/beginGetAccess and endGetAccess.
func (c *Cloud) action(w http.ResponseWriter, r *http.Request, group, typ, name, act string) {
	parts := strings.Split(r.URL.Path, "/")
	d := c.res[strings.ToLower(resourceID(parts[4], typeNames[typeDisk], parts[8]))]
	if typ != typeDisk || d == nil {
		armError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.Compute/disks/%s' under resource group '%s' was not found.", parts[8], parts[4]))
		return
	}
	p := props(d.body)
	switch act {
	case "begingetaccess":
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if str(body["access"]) != "Write" || str(p["diskState"]) != "ReadyToUpload" {
			armError(w, http.StatusConflict, "OperationNotAllowed", "Write access can only be granted to a disk in state ReadyToUpload.")
			return
		}
		op := c.startOp(nil)
		op.apply = func() {
			p["diskState"] = "ActiveUpload"
			op.result = map[string]any{"accessSAS": fmt.Sprintf("%s/blob/%s?sv=2018-03-28&sr=b&si=fake&sig=fakesig", c.srv.URL, strings.ToLower(parts[8]))}
		}
		c.accepted(w, http.StatusAccepted, op, nil)
	case "endgetaccess":
		op := c.startOp(func() {
			if str(p["diskState"]) == "ActiveUpload" {
				p["diskState"] = "Unattached"
			}
		})
		c.accepted(w, http.StatusAccepted, op, nil)
	default:
		armError(w, http.StatusNotFound, "InvalidAction", act)
	}
}
