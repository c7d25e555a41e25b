/** The text of proto/ops.proto, embedded so compiled binaries need no schema file (ops_test.ts keeps the two identical). */
export const OPS_PROTO =
  `// LLB wire format: BuildKit's solver/pb/ops.proto (package pb), field numbers and names as upstream.
// Shape reconstructed from the BuildKit LLB summary; comments are ours. The TS codec (ops.ts) embeds
// the same schema; ops_test.ts checks that both stay identical.
syntax = "proto3";

package pb;

option go_package = "github.com/moby/buildkit/solver/pb";

// Op is one vertex of the build graph. Terminal ops carry only inputs.
message Op {
  repeated Input inputs = 1;
  oneof op {
    ExecOp exec = 2;
    SourceOp source = 3;
    FileOp file = 4;
    BuildOp build = 5;
    MergeOp merge = 6;
    DiffOp diff = 7;
    PassthroughOp passthrough = 8;
  }
  Platform platform = 10;
  WorkerConstraints constraints = 11;
}

message Platform {
  string Architecture = 1;
  string OS = 2;
  string Variant = 3;
  string OSVersion = 4;
  repeated string OSFeatures = 5;
}

// Input is an edge: the digest of another op and which output of it.
message Input {
  string digest = 1;
  int64 index = 2;
}

message ExecOp {
  Meta meta = 1;
  repeated Mount mounts = 2;
  NetMode network = 3;
  SecurityMode security = 4;
  repeated SecretEnv secretenv = 5;
  repeated CDIDevice cdiDevices = 6;
}

message Meta {
  repeated string args = 1;
  repeated string env = 2;
  string cwd = 3;
  string user = 4;
  ProxyEnv proxy_env = 5;
  repeated HostIP extraHosts = 6;
  string hostname = 7;
  repeated Ulimit ulimit = 9;
  string cgroupParent = 10;
  bool removeMountStubsRecursive = 11;
  repeated int32 validExitCodes = 12;
}

message HostIP {
  string Host = 1;
  string IP = 2;
}

message Ulimit {
  string Name = 1;
  int64 Soft = 2;
  int64 Hard = 3;
}

message SecretEnv {
  string ID = 1;
  string name = 2;
  bool optional = 3;
}

message CDIDevice {
  string name = 1;
  bool optional = 2;
}

enum NetMode {
  UNSET = 0;
  HOST = 1;
  NONE = 2;
}

enum SecurityMode {
  SANDBOX = 0;
  INSECURE = 1;
}

message Mount {
  int64 input = 1;
  string selector = 2;
  string dest = 3;
  int64 output = 4;
  bool readonly = 5;
  MountType mountType = 6;
  TmpfsOpt TmpfsOpt = 19;
  CacheOpt cacheOpt = 20;
  SecretOpt secretOpt = 21;
  SSHOpt SSHOpt = 22;
  string resultID = 23;
  MountContentCache contentCache = 24;
}

enum MountType {
  BIND = 0;
  SECRET = 1;
  SSH = 2;
  CACHE = 3;
  TMPFS = 4;
}

enum MountContentCache {
  DEFAULT = 0;
  ON = 1;
  OFF = 2;
}

message TmpfsOpt {
  int64 size = 1;
}

message CacheOpt {
  string ID = 1;
  CacheSharingOpt sharing = 2;
}

enum CacheSharingOpt {
  SHARED = 0;
  PRIVATE = 1;
  LOCKED = 2;
}

message SecretOpt {
  string ID = 1;
  uint32 uid = 2;
  uint32 gid = 3;
  uint32 mode = 4;
  bool optional = 5;
}

message SSHOpt {
  string ID = 1;
  uint32 uid = 2;
  uint32 gid = 3;
  uint32 mode = 4;
  bool optional = 5;
}

message SourceOp {
  string identifier = 1;
  map<string, string> attrs = 2;
}

message BuildOp {
  int64 builder = 1;
  map<string, BuildInput> inputs = 2;
  Definition def = 3;
  map<string, string> attrs = 4;
}

message BuildInput {
  int64 input = 1;
}

message OpMetadata {
  bool ignore_cache = 1;
  map<string, string> description = 2;
  // field 3 was used by WorkerConstraint (not reserved upstream)
  ExportCache export_cache = 4;
  map<string, bool> caps = 5;
  ProgressGroup progress_group = 6;
  LinuxResources linux_resources = 7;
}

message Source {
  map<string, Locations> locations = 1;
  repeated SourceInfo infos = 2;
}

message Locations {
  repeated Location locations = 1;
}

message SourceInfo {
  string filename = 1;
  bytes data = 2;
  Definition definition = 3;
  string language = 4;
}

message Location {
  int32 sourceIndex = 1;
  repeated Range ranges = 2;
}

message Range {
  Position start = 1;
  Position end = 2;
}

message Position {
  int32 line = 1;
  int32 character = 2;
}

message ExportCache {
  bool Value = 1;
}

message ProgressGroup {
  string id = 1;
  string name = 2;
  bool weak = 3;
}

message LinuxResources {
  int64 memory = 1;
  int64 memorySwap = 2;
  uint64 cpuShares = 3;
  uint64 cpuPeriod = 4;
  int64 cpuQuota = 5;
  string cpusetCpus = 6;
  string cpusetMems = 7;
}

message ProxyEnv {
  string http_proxy = 1;
  string https_proxy = 2;
  string ftp_proxy = 3;
  string no_proxy = 4;
  string all_proxy = 5;
}

message WorkerConstraints {
  repeated string filter = 1;
}

// Definition is the marshalled LLB graph: ops in dependency order, terminal op last.
message Definition {
  repeated bytes def = 1;
  map<string, OpMetadata> metadata = 2;
  Source Source = 3;
}

message FileOp {
  repeated FileAction actions = 2;
}

message FileAction {
  int64 input = 1;
  int64 secondaryInput = 2;
  int64 output = 3;
  oneof action {
    FileActionCopy copy = 4;
    FileActionMkFile mkfile = 5;
    FileActionMkDir mkdir = 6;
    FileActionRm rm = 7;
    FileActionSymlink symlink = 8;
  }
}

message FileActionCopy {
  string src = 1;
  string dest = 2;
  ChownOpt owner = 3;
  int32 mode = 4;
  bool followSymlink = 5;
  bool dirCopyContents = 6;
  bool attemptUnpackDockerCompatibility = 7;
  bool createDestPath = 8;
  bool allowWildcard = 9;
  bool allowEmptyWildcard = 10;
  int64 timestamp = 11;
  repeated string include_patterns = 12;
  repeated string exclude_patterns = 13;
  bool alwaysReplaceExistingDestPaths = 14;
  string modeStr = 15;
  repeated string required_paths = 16;
}

message FileActionMkFile {
  string path = 1;
  int32 mode = 2;
  bytes data = 3;
  ChownOpt owner = 4;
  int64 timestamp = 5;
}

message FileActionSymlink {
  string oldpath = 1;
  string newpath = 2;
  ChownOpt owner = 3;
  int64 timestamp = 4;
}

message FileActionMkDir {
  string path = 1;
  int32 mode = 2;
  bool makeParents = 3;
  ChownOpt owner = 4;
  int64 timestamp = 5;
}

message FileActionRm {
  string path = 1;
  bool allowNotFound = 2;
  bool allowWildcard = 3;
}

message ChownOpt {
  UserOpt user = 1;
  UserOpt group = 2;
}

message UserOpt {
  oneof user {
    NamedUserOpt byName = 1;
    uint32 byID = 2;
  }
}

message NamedUserOpt {
  string name = 1;
  int64 input = 2;
}

message MergeInput {
  int64 input = 1;
}

message MergeOp {
  repeated MergeInput inputs = 1;
}

message LowerDiffInput {
  int64 input = 1;
}

message UpperDiffInput {
  int64 input = 1;
}

message DiffOp {
  LowerDiffInput lower = 1;
  UpperDiffInput upper = 2;
}

message PassthroughOp {
  string id = 1;
  repeated int64 outputs = 2;
}
`;
