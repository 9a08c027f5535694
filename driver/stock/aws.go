//go:build !nodepool_omit_aws

package stock

import _ "github.com/nodepool-go/nodepool/driver/aws" // registers "aws"
