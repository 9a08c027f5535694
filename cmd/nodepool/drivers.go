package main

// The drivers this command can load providers of (config parsing) and
// delete instances through (`delete --now`).
import (
	_ "github.com/nodepool-go/nodepool/driver/stock"
)
