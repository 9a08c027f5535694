package zkclient

import "path"

// Roots of the znode tree; every path is relative to the session's chroot.
const (
	RootPath         = "/nodepool"
	RequestRoot      = "/nodepool/requests"
	RequestLockRoot  = "/nodepool/requests-lock"
	NodeRoot         = "/nodepool/nodes"
	ImageRoot        = "/nodepool/images"
	ComponentRoot    = "/nodepool/components"
	StatsElection    = "/nodepool/elections/stats"
	lockDirName      = "lock"
	requestPrefixLen = 3
)

// RequestPath returns the znode path of a node request.
func RequestPath(id string) string { return RequestRoot + "/" + id }

// RequestLockPath returns the lock directory of a node request.
func RequestLockPath(id string) string { return RequestLockRoot + "/" + id }

// NodePath returns the znode path of a node.
func NodePath(id string) string { return NodeRoot + "/" + id }

// NodeLockPath returns the lock directory of a node.
func NodeLockPath(id string) string { return NodeRoot + "/" + id + "/" + lockDirName }

// ComponentPath returns the directory of one component kind.
func ComponentPath(kind string) string { return ComponentRoot + "/" + kind }

// ImagePath returns the directory of an image.
func ImagePath(image string) string { return ImageRoot + "/" + image }

// ImagePausePath returns the pause flag of an image.
func ImagePausePath(image string) string { return ImagePath(image) + "/pause" }

// BuildRequestPath returns the manual build request flag of an image.
func BuildRequestPath(image string) string { return ImagePath(image) + "/request-build" }

// BuildsPath returns the builds directory of an image.
func BuildsPath(image string) string { return ImagePath(image) + "/builds" }

// BuildLockPath returns the lock held while building an image.
func BuildLockPath(image string) string { return BuildsPath(image) + "/" + lockDirName }

// BuildPath returns the znode path of one build.
func BuildPath(image, build string) string { return BuildsPath(image) + "/" + build }

// BuildIDLockPath returns the lock of one build (used by cleanup).
func BuildIDLockPath(image, build string) string { return BuildPath(image, build) + "/" + lockDirName }

// BuildProvidersPath returns the providers directory of a build.
func BuildProvidersPath(image, build string) string { return BuildPath(image, build) + "/providers" }

// BuildProviderPath returns one provider's directory under a build.
func BuildProviderPath(image, build, provider string) string {
	return BuildProvidersPath(image, build) + "/" + provider
}

// UploadsPath returns the uploads directory of a build in one provider.
func UploadsPath(image, build, provider string) string {
	return BuildProviderPath(image, build, provider) + "/images"
}

// UploadLockPath returns the lock held while uploading a build to a provider.
func UploadLockPath(image, build, provider string) string {
	return UploadsPath(image, build, provider) + "/" + lockDirName
}

// UploadPath returns the znode path of one upload.
func UploadPath(image, build, provider, upload string) string {
	return UploadsPath(image, build, provider) + "/" + upload
}

// UploadIDLockPath returns the lock of one upload (used by cleanup).
func UploadIDLockPath(image, build, provider, upload string) string {
	return UploadPath(image, build, provider, upload) + "/" + lockDirName
}

func parent(p string) string { return path.Dir(p) }
