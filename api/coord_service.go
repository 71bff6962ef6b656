package api

// Operation names of the service registry.
const (
	OpServiceRegister   = "service.register"
	OpServiceHeartbeat  = "service.heartbeat"
	OpServiceHealth     = "service.health"
	OpServiceUpdate     = "service.update"
	OpServiceDeregister = "service.deregister"
	OpServiceGet        = "service.get"
	OpServiceList       = "service.list"
	OpServiceDiscover   = "service.discover"
)

// Limits and defaults of the service registry.
const (
	MaxServiceInstances   = 10_000     // live instances of one service
	MaxServiceDiscover    = 1_000      // instances of one discovery
	MaxServiceTags        = 32         // tags of one instance
	MaxServiceTagSize     = 256        // bytes of one tag
	MaxServiceAddressSize = 1024       // bytes of an address
	MaxServiceVersionSize = 256        // bytes of a version
	MaxServiceTTLMs       = 86_400_000 // 24 h
	DefaultServiceTTLMs   = 30_000
	DefaultServiceWeight  = 100
	DefaultServiceVersion = "1.0.0"
	DefaultServiceLimit   = 100
)

// Health statuses of an instance.
const (
	ServiceHealthy   = "healthy"
	ServiceUnhealthy = "unhealthy"
	ServiceUnknown   = "unknown"
)

// ServiceRequest is the request of every service registry operation.
//
// register: Service, InstanceID, Address, Version (default 1.0.0), Tags,
// Weight (default 100), TTLMs (default 30000). heartbeat, deregister:
// FencingToken. health: FencingToken, Health. update: FencingToken and
// Version, Weight, Tags (SetTags) when non-zero. discover: HealthyOnly,
// Tags (all must be present), VersionPrefix, Limit. list: Prefix, Limit.
type ServiceRequest struct {
	Service       string   `cbor:"service,omitempty" json:"service,omitempty"`
	InstanceID    string   `cbor:"instance_id,omitempty" json:"instance_id,omitempty"`
	Address       string   `cbor:"address,omitempty" json:"address,omitempty"`
	Version       string   `cbor:"version,omitempty" json:"version,omitempty"`
	Tags          []string `cbor:"tags,omitempty" json:"tags,omitempty"`
	SetTags       bool     `cbor:"set_tags,omitempty" json:"set_tags,omitempty"`
	Weight        uint32   `cbor:"weight,omitempty" json:"weight,omitempty"`
	TTLMs         int64    `cbor:"ttl_ms,omitempty" json:"ttl_ms,omitempty"`
	FencingToken  uint64   `cbor:"fencing_token,omitempty" json:"fencing_token,omitempty"`
	Health        string   `cbor:"health,omitempty" json:"health,omitempty"`
	HealthyOnly   bool     `cbor:"healthy_only,omitempty" json:"healthy_only,omitempty"`
	VersionPrefix string   `cbor:"version_prefix,omitempty" json:"version_prefix,omitempty"`
	Prefix        string   `cbor:"prefix,omitempty" json:"prefix,omitempty"`
	Limit         int      `cbor:"limit,omitempty" json:"limit,omitempty"`
}

// ServiceInstance is one registered instance. Healthy is true while the
// registration's deadline (leader clock) has not passed and the reported
// health is not unhealthy.
type ServiceInstance struct {
	Service         string   `cbor:"service" json:"service"`
	InstanceID      string   `cbor:"instance_id" json:"instance_id"`
	Address         string   `cbor:"address" json:"address"`
	Version         string   `cbor:"version" json:"version"`
	Tags            []string `cbor:"tags" json:"tags"`
	Weight          uint32   `cbor:"weight" json:"weight"`
	Health          string   `cbor:"health" json:"health"`
	Healthy         bool     `cbor:"healthy" json:"healthy"`
	FencingToken    uint64   `cbor:"fencing_token" json:"fencing_token"`
	RegisteredAtMs  int64    `cbor:"registered_at_ms" json:"registered_at_ms"`
	LastHeartbeatMs int64    `cbor:"last_heartbeat_ms" json:"last_heartbeat_ms"`
	TTLMs           int64    `cbor:"ttl_ms" json:"ttl_ms"`
	DeadlineMs      int64    `cbor:"deadline_ms" json:"deadline_ms"`
}

// ServiceResponse is the answer of every service registry operation.
type ServiceResponse struct {
	Operation    string            `cbor:"operation" json:"operation"`
	Service      string            `cbor:"service,omitempty" json:"service,omitempty"`
	InstanceID   string            `cbor:"instance_id,omitempty" json:"instance_id,omitempty"`
	IsSuccess    bool              `cbor:"is_success" json:"is_success"`
	FencingToken uint64            `cbor:"fencing_token,omitempty" json:"fencing_token,omitempty"`
	DeadlineMs   int64             `cbor:"deadline_ms,omitempty" json:"deadline_ms,omitempty"`
	WasFound     *bool             `cbor:"was_found,omitempty" json:"was_found,omitempty"`
	Instance     *ServiceInstance  `cbor:"instance,omitempty" json:"instance,omitempty"`
	Instances    []ServiceInstance `cbor:"instances,omitempty" json:"instances,omitempty"`
	Services     []string          `cbor:"services,omitempty" json:"services,omitempty"`
	Error        string            `cbor:"error,omitempty" json:"error,omitempty"`
}
