package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/aspen-dev/aspen/api"
)

// PrefixService is the key prefix of the service registry: one record per
// instance at PrefixService+service+":"+instance.
const PrefixService = "__coord:svc:"

// serviceScanPage is the page size of the registry's scans.
const serviceScanPage = 256

// serviceRecord is the JSON record of one registered instance. A
// deregistration keeps the record with DeadlineMs 0 (like a released lock)
// so that the next registration of the instance gets a larger token.
type serviceRecord struct {
	Address         string   `json:"address"`
	Version         string   `json:"version"`
	Tags            []string `json:"tags,omitempty"`
	Weight          uint32   `json:"weight"`
	Health          string   `json:"health"`
	FencingToken    uint64   `json:"fencing_token"`
	RegisteredAtMs  int64    `json:"registered_at_ms"`
	LastHeartbeatMs int64    `json:"last_heartbeat_ms"`
	TTLMs           int64    `json:"ttl_ms"`
	DeadlineMs      int64    `json:"deadline_ms"` // unix ms, leader clock; 0 = deregistered
}

// registered reports whether r is a registration (live or expired).
func (r *serviceRecord) registered() bool { return r != nil && r.DeadlineMs != 0 }

// live reports whether r's registration has not expired at nowMs.
func (r *serviceRecord) live(nowMs int64) bool { return r.registered() && nowMs < r.DeadlineMs }

// instance is the public view of r.
func (r *serviceRecord) instance(service, id string, nowMs int64) api.ServiceInstance {
	health := r.Health
	if !r.live(nowMs) {
		health = api.ServiceUnhealthy
	}
	return api.ServiceInstance{
		Service: service, InstanceID: id, Address: r.Address, Version: r.Version,
		Tags: slices.Clone(r.Tags), Weight: r.Weight, Health: health,
		Healthy: r.live(nowMs) && r.Health != api.ServiceUnhealthy, FencingToken: r.FencingToken,
		RegisteredAtMs: r.RegisteredAtMs, LastHeartbeatMs: r.LastHeartbeatMs, TTLMs: r.TTLMs, DeadlineMs: r.DeadlineMs,
	}
}

func decodeService(kv *api.KeyValue) (*serviceRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r serviceRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// decideServiceRegister: (re-)registering always succeeds and issues the
// previous token + 1 (1 for a new instance), so a re-registration fences
// off the previous holder of the instance id.
func decideServiceRegister(cur *serviceRecord, req *api.ServiceRequest, nowMs int64) (*serviceRecord, api.ServiceResponse) {
	var token uint64 = 1
	if cur != nil {
		token = cur.FencingToken + 1
	}
	next := &serviceRecord{
		Address: req.Address, Version: req.Version, Tags: slices.Clone(req.Tags), Weight: req.Weight,
		Health: api.ServiceHealthy, FencingToken: token, RegisteredAtMs: nowMs, LastHeartbeatMs: nowMs,
		TTLMs: req.TTLMs, DeadlineMs: nowMs + req.TTLMs,
	}
	return next, api.ServiceResponse{IsSuccess: true, FencingToken: token, DeadlineMs: next.DeadlineMs}
}

// serviceRefusal says why an operation with token on cur is refused, or
// "" when cur is the caller's registration (expired ones too when
// allowExpired).
func serviceRefusal(cur *serviceRecord, token uint64, nowMs int64, allowExpired bool) string {
	switch {
	case !cur.registered():
		return "instance not registered"
	case cur.FencingToken != token:
		return fmt.Sprintf("fencing token mismatch: instance is registered with token %d, not %d", cur.FencingToken, token)
	case !allowExpired && !cur.live(nowMs):
		return fmt.Sprintf("registration expired %d ms ago", nowMs-cur.DeadlineMs)
	}
	return ""
}

// decideServiceChange applies op (heartbeat, health, update, deregister)
// to the caller's registration. Heartbeat moves the deadline to now+TTL;
// deregister also succeeds on an expired registration.
func decideServiceChange(cur *serviceRecord, op string, req *api.ServiceRequest, nowMs int64) (*serviceRecord, api.ServiceResponse) {
	if msg := serviceRefusal(cur, req.FencingToken, nowMs, op == "deregister"); msg != "" {
		r := api.ServiceResponse{Error: msg}
		if cur != nil {
			r.FencingToken = cur.FencingToken
		}
		return nil, r
	}
	next := *cur
	switch op {
	case "heartbeat":
		next.LastHeartbeatMs, next.DeadlineMs = nowMs, nowMs+cur.TTLMs
	case "health":
		next.Health = req.Health
	case "update":
		if req.Version != "" {
			next.Version = req.Version
		}
		if req.Weight != 0 {
			next.Weight = req.Weight
		}
		if req.SetTags {
			next.Tags = slices.Clone(req.Tags)
		}
	case "deregister":
		next.DeadlineMs = 0
		return &next, api.ServiceResponse{IsSuccess: true, FencingToken: cur.FencingToken}
	}
	return &next, api.ServiceResponse{IsSuccess: true, FencingToken: cur.FencingToken, DeadlineMs: next.DeadlineMs}
}

// serviceMatches reports whether an instance passes discovery's filters.
func serviceMatches(in *api.ServiceInstance, req *api.ServiceRequest) bool {
	if req.HealthyOnly && !in.Healthy {
		return false
	}
	if !strings.HasPrefix(in.Version, req.VersionPrefix) {
		return false
	}
	for _, t := range req.Tags {
		if !slices.Contains(in.Tags, t) {
			return false
		}
	}
	return true
}

// checkServiceName validates a service name: no ':' (it separates the
// service from the instance in the key).
func checkServiceName(name string) error {
	if name == "" {
		return api.Errorf(api.CodeInvalidArgument, "service name is empty")
	}
	if strings.Contains(name, ":") {
		return api.Errorf(api.CodeInvalidArgument, "service name %q contains ':'", name)
	}
	if !utf8.ValidString(name) {
		return api.Errorf(api.CodeInvalidArgument, "service name is not valid UTF-8")
	}
	return nil
}

// serviceKey checks a service and instance id and returns the record key.
func serviceKey(service, instance string) ([]byte, error) {
	if err := checkServiceName(service); err != nil {
		return nil, err
	}
	if instance == "" {
		return nil, api.Errorf(api.CodeInvalidArgument, "instance id is empty")
	}
	return recordKey(PrefixService+service+":", "instance id", instance)
}

func checkString(field, v string, limit int) error {
	if len(v) > limit {
		return api.Errorf(api.CodeInvalidArgument, "%s is %d bytes; the limit is %d", field, len(v), limit)
	}
	return nil
}

func checkTags(tags []string) error {
	if len(tags) > api.MaxServiceTags {
		return api.Errorf(api.CodeInvalidArgument, "%d tags; the limit is %d", len(tags), api.MaxServiceTags)
	}
	for _, t := range tags {
		if t == "" {
			return api.Errorf(api.CodeInvalidArgument, "empty tag")
		}
		if err := checkString("tag", t, api.MaxServiceTagSize); err != nil {
			return err
		}
	}
	return nil
}

// serviceStep runs decide on an instance's record in a compare-and-swap step.
func (s *Service) serviceStep(ctx context.Context, op string, req *api.ServiceRequest, decide func(cur *serviceRecord, nowMs int64) (*serviceRecord, api.ServiceResponse)) (*api.ServiceResponse, error) {
	key, err := serviceKey(req.Service, req.InstanceID)
	if err != nil {
		return nil, err
	}
	out, err := recordStep(ctx, s, key, decodeService, decide)
	if err != nil {
		return nil, err
	}
	out.Operation, out.Service, out.InstanceID = op, req.Service, req.InstanceID
	return &out, nil
}

// scanService calls f with every record under prefix, in key order, until
// f returns false.
func (s *Service) scanService(ctx context.Context, prefix []byte, f func(key []byte, r *serviceRecord) bool) error {
	var after []byte
	for {
		kvs, more, err := s.b.Scan(ctx, prefix, after, serviceScanPage)
		if err != nil {
			return err
		}
		for i := range kvs {
			r, err := decodeService(&kvs[i])
			if err != nil {
				return err
			}
			if !f(kvs[i].Key, r) {
				return nil
			}
		}
		if !more || len(kvs) == 0 {
			return nil
		}
		after = kvs[len(kvs)-1].Key
	}
}

// ServiceRegister registers or re-registers an instance. A new instance
// is refused when the service has MaxServiceInstances live instances (a
// check made before the write, so concurrent registrations may overshoot
// it slightly).
func (s *Service) ServiceRegister(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	key, err := serviceKey(req.Service, req.InstanceID)
	if err != nil {
		return nil, err
	}
	r := *req
	if r.Address == "" {
		return nil, api.Errorf(api.CodeInvalidArgument, "address is empty")
	}
	if err := checkString("address", r.Address, api.MaxServiceAddressSize); err != nil {
		return nil, err
	}
	if r.Version == "" {
		r.Version = api.DefaultServiceVersion
	}
	if err := checkString("version", r.Version, api.MaxServiceVersionSize); err != nil {
		return nil, err
	}
	if err := checkTags(r.Tags); err != nil {
		return nil, err
	}
	if r.Weight == 0 {
		r.Weight = api.DefaultServiceWeight
	}
	if r.TTLMs == 0 {
		r.TTLMs = api.DefaultServiceTTLMs
	}
	if r.TTLMs < 1 || r.TTLMs > api.MaxServiceTTLMs {
		return nil, api.Errorf(api.CodeInvalidArgument, "ttl_ms is %d; want 1..%d milliseconds", r.TTLMs, int64(api.MaxServiceTTLMs))
	}
	cur, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	if rec, err := decodeService(cur); err != nil {
		return nil, err
	} else if !rec.live(s.b.NowMs()) {
		n, now := 0, s.b.NowMs()
		err := s.scanService(ctx, []byte(PrefixService+r.Service+":"), func(_ []byte, x *serviceRecord) bool {
			if x.live(now) {
				n++
			}
			return n < api.MaxServiceInstances
		})
		if err != nil {
			return nil, err
		}
		if n >= api.MaxServiceInstances {
			return &api.ServiceResponse{Operation: "register", Service: r.Service, InstanceID: r.InstanceID,
				Error: fmt.Sprintf("service %s has %d live instances; the limit is %d", r.Service, n, api.MaxServiceInstances)}, nil
		}
	}
	return s.serviceStep(ctx, "register", &r, func(cur *serviceRecord, nowMs int64) (*serviceRecord, api.ServiceResponse) {
		return decideServiceRegister(cur, &r, nowMs)
	})
}

func (s *Service) serviceChange(ctx context.Context, op string, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return s.serviceStep(ctx, op, req, func(cur *serviceRecord, nowMs int64) (*serviceRecord, api.ServiceResponse) {
		return decideServiceChange(cur, op, req, nowMs)
	})
}

// ServiceHeartbeat extends a live registration to now + its TTL.
func (s *Service) ServiceHeartbeat(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return s.serviceChange(ctx, "heartbeat", req)
}

// ServiceHealth sets the reported health of a live registration.
func (s *Service) ServiceHealth(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	switch req.Health {
	case api.ServiceHealthy, api.ServiceUnhealthy, api.ServiceUnknown:
	default:
		return nil, api.Errorf(api.CodeInvalidArgument, "health is %q; want healthy, unhealthy or unknown", req.Health)
	}
	return s.serviceChange(ctx, "health", req)
}

// ServiceUpdate changes the version, weight or tags of a live registration.
func (s *Service) ServiceUpdate(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	if err := checkString("version", req.Version, api.MaxServiceVersionSize); err != nil {
		return nil, err
	}
	if err := checkTags(req.Tags); err != nil {
		return nil, err
	}
	return s.serviceChange(ctx, "update", req)
}

// ServiceDeregister removes a registration (expired ones too).
func (s *Service) ServiceDeregister(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	return s.serviceChange(ctx, "deregister", req)
}

// ServiceGet returns one instance; a deregistered or expired one is not
// found.
func (s *Service) ServiceGet(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	key, err := serviceKey(req.Service, req.InstanceID)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := decodeService(kv)
	if err != nil {
		return nil, err
	}
	now := s.b.NowMs()
	found := r.live(now)
	out := &api.ServiceResponse{Operation: "get", Service: req.Service, InstanceID: req.InstanceID, IsSuccess: true, WasFound: &found}
	if found {
		in := r.instance(req.Service, req.InstanceID, now)
		out.Instance, out.FencingToken = &in, r.FencingToken
	}
	return out, nil
}

// ServiceDiscover returns the live (registered, not expired) instances of a service that pass
// the filters, in instance id order, at most Limit (default 100, ≤ 1,000).
func (s *Service) ServiceDiscover(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	if err := checkServiceName(req.Service); err != nil {
		return nil, err
	}
	limit, err := serviceLimit(req.Limit)
	if err != nil {
		return nil, err
	}
	prefix := []byte(PrefixService + req.Service + ":")
	now := s.b.NowMs()
	out := &api.ServiceResponse{Operation: "discover", Service: req.Service, IsSuccess: true, Instances: []api.ServiceInstance{}}
	err = s.scanService(ctx, prefix, func(key []byte, r *serviceRecord) bool {
		if !r.live(now) {
			return true // deregistered or expired: not returned (spec 3.10)
		}
		in := r.instance(req.Service, string(key[len(prefix):]), now)
		if serviceMatches(&in, req) {
			out.Instances = append(out.Instances, in)
		}
		return len(out.Instances) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ServiceList returns the names of services with at least one live
// instance whose name starts with Prefix, at most Limit.
func (s *Service) ServiceList(ctx context.Context, req *api.ServiceRequest) (*api.ServiceResponse, error) {
	limit, err := serviceLimit(req.Limit)
	if err != nil {
		return nil, err
	}
	out := &api.ServiceResponse{Operation: "list", IsSuccess: true, Services: []string{}}
	prefix := []byte(PrefixService + req.Prefix)
	now := s.b.NowMs()
	err = s.scanService(ctx, prefix, func(key []byte, r *serviceRecord) bool {
		if !r.live(now) {
			return true
		}
		rest := key[len(PrefixService):]
		i := bytes.IndexByte(rest, ':')
		if i < 0 {
			return true
		}
		name := string(rest[:i])
		if n := len(out.Services); n == 0 || out.Services[n-1] != name {
			out.Services = append(out.Services, name)
		}
		return len(out.Services) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func serviceLimit(limit int) (int, error) {
	return pageLimit(limit, api.DefaultServiceLimit, api.MaxServiceDiscover)
}
