package coordination

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// ServiceClient is what a Registry needs from a cluster; *client.Client has it.
type ServiceClient interface {
	ServiceRegister(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceHeartbeat(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceHealth(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceUpdate(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceDeregister(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceGet(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceList(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
	ServiceDiscover(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error)
}

// ErrRegistration is wrapped by the errors of a refused registry operation
// (stale fencing token, expired or missing registration, too many
// instances).
var ErrRegistration = errors.New("registration refused")

// Registry is a handle on the service registry.
type Registry struct{ c ServiceClient }

// NewRegistry returns a handle on the registry. It makes no call.
func NewRegistry(c ServiceClient) *Registry { return &Registry{c: c} }

// Instance describes an instance to register. Zero values take the
// defaults: version 1.0.0, weight 100, TTL 30 s (at most 24 h).
type Instance struct {
	Service, ID, Address, Version string
	Tags                          []string
	Weight                        uint32
	TTL                           time.Duration
}

// Registration is one registration of an instance, fenced by its token.
type Registration struct {
	r        *Registry
	service  string
	id       string
	token    uint64
	deadline time.Time
}

func regRefused(op, service, id, msg string) error {
	return fmt.Errorf("%w: service %s instance %s: %s: %s", ErrRegistration, service, id, op, msg)
}

// Register registers (or re-registers, fencing off the previous
// registration) an instance.
func (r *Registry) Register(ctx context.Context, in Instance) (*Registration, error) {
	resp, err := r.c.ServiceRegister(ctx, &api.ServiceRequest{Service: in.Service, InstanceID: in.ID, Address: in.Address,
		Version: in.Version, Tags: in.Tags, Weight: in.Weight, TTLMs: in.TTL.Milliseconds()})
	if err != nil {
		return nil, err
	}
	if !resp.IsSuccess {
		return nil, regRefused("register", in.Service, in.ID, resp.Error)
	}
	return &Registration{r: r, service: in.Service, id: in.ID, token: resp.FencingToken, deadline: time.UnixMilli(resp.DeadlineMs)}, nil
}

// FencingToken is the registration's token.
func (g *Registration) FencingToken() uint64 { return g.token }

// LeaderDeadline is when the registration expires unless heartbeated, by
// the leader's clock.
func (g *Registration) LeaderDeadline() time.Time { return g.deadline }

func (g *Registration) req() *api.ServiceRequest {
	return &api.ServiceRequest{Service: g.service, InstanceID: g.id, FencingToken: g.token}
}

func (g *Registration) do(ctx context.Context, op string, f func(context.Context, *api.ServiceRequest) (*api.ServiceResponse, error), req *api.ServiceRequest) error {
	resp, err := f(ctx, req)
	if err != nil {
		return err
	}
	if !resp.IsSuccess {
		return regRefused(op, g.service, g.id, resp.Error)
	}
	if resp.DeadlineMs != 0 {
		g.deadline = time.UnixMilli(resp.DeadlineMs)
	}
	return nil
}

// Heartbeat extends the registration to now + its TTL.
func (g *Registration) Heartbeat(ctx context.Context) error {
	return g.do(ctx, "heartbeat", g.r.c.ServiceHeartbeat, g.req())
}

// SetHealth reports the instance's health (api.ServiceHealthy, …).
func (g *Registration) SetHealth(ctx context.Context, health string) error {
	req := g.req()
	req.Health = health
	return g.do(ctx, "health", g.r.c.ServiceHealth, req)
}

// Deregister removes the registration.
func (g *Registration) Deregister(ctx context.Context) error {
	return g.do(ctx, "deregister", g.r.c.ServiceDeregister, g.req())
}

// DiscoverOptions filter a discovery.
type DiscoverOptions struct {
	HealthyOnly   bool
	Tags          []string // all must be present
	VersionPrefix string
	Limit         int // default 100, at most 1,000
}

// Discover returns the instances of service that pass the filters.
func (r *Registry) Discover(ctx context.Context, service string, o DiscoverOptions) ([]api.ServiceInstance, error) {
	resp, err := r.c.ServiceDiscover(ctx, &api.ServiceRequest{Service: service, HealthyOnly: o.HealthyOnly, Tags: o.Tags, VersionPrefix: o.VersionPrefix, Limit: o.Limit})
	if err != nil {
		return nil, err
	}
	return resp.Instances, nil
}

// Get returns one instance, or nil when it is not registered.
func (r *Registry) Get(ctx context.Context, service, id string) (*api.ServiceInstance, error) {
	resp, err := r.c.ServiceGet(ctx, &api.ServiceRequest{Service: service, InstanceID: id})
	if err != nil {
		return nil, err
	}
	return resp.Instance, nil
}

// Services returns the names of services with registered instances that
// start with prefix.
func (r *Registry) Services(ctx context.Context, prefix string, limit int) ([]string, error) {
	resp, err := r.c.ServiceList(ctx, &api.ServiceRequest{Prefix: prefix, Limit: limit})
	if err != nil {
		return nil, err
	}
	return resp.Services, nil
}
