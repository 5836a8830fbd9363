-- Amazon RDS for PostgreSQL: manual DB snapshots through the AWS CLI v2.
-- Environment vars used: rds_instance (required), region (optional), restore_instance_class
-- (optional). Snapshot ids: dbflow-<env>-<YYYYMMDDHHMMSS>.

local function base(ctx)
  local instance = ctx.vars and ctx.vars.rds_instance
  if not instance or instance == "" then
    error("aws_rds: set vars.rds_instance on environment `" .. tostring(ctx.env) .. "`")
  end
  return instance
end

local function aws(ctx, args)
  local cmd = { "aws", "rds" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  if ctx.vars and ctx.vars.region then
    cmd[#cmd + 1] = "--region"
    cmd[#cmd + 1] = ctx.vars.region
  end
  cmd[#cmd + 1] = "--output"
  cmd[#cmd + 1] = "json"
  local r = dbflow.exec(cmd)
  if r.code ~= 0 then
    error("aws " .. args[1] .. " failed (exit " .. r.code .. "): " .. (r.stderr or ""))
  end
  if r.stdout == nil or r.stdout:match("^%s*$") then return {} end
  local ok, doc = pcall(dbflow.json.decode, r.stdout)
  if not ok then error("aws " .. args[1] .. " returned malformed JSON: " .. tostring(doc)) end
  return doc
end

local function slug(s)
  return (tostring(s):lower():gsub("[^a-z0-9-]", "-"))
end

return {
  manual = {
    snapshot = "aws rds create-db-snapshot --db-instance-identifier $INSTANCE --db-snapshot-identifier $SNAPSHOT",
    wait = "aws rds wait db-snapshot-available --db-snapshot-identifier $SNAPSHOT",
    list = "aws rds describe-db-snapshots --db-instance-identifier $INSTANCE",
    restore = "aws rds restore-db-instance-from-db-snapshot --db-instance-identifier $NEW_INSTANCE --db-snapshot-identifier $SNAPSHOT",
    delete = "aws rds delete-db-snapshot --db-snapshot-identifier $SNAPSHOT",
  },

  snapshot = function(ctx, opts)
    local instance = base(ctx)
    local id = opts.id or ("dbflow-" .. slug(ctx.env) .. "-" .. os.date("!%Y%m%d%H%M%S"))
    local doc = aws(ctx, { "create-db-snapshot", "--db-instance-identifier", instance, "--db-snapshot-identifier", id })
    local snap = doc.DBSnapshot or error("aws_rds: create-db-snapshot answered without DBSnapshot")
    dbflow.log.info("snapshot " .. snap.DBSnapshotIdentifier .. " is " .. tostring(snap.Status))
    return snap.DBSnapshotIdentifier
  end,

  wait = function(ctx, id)
    -- The CLI's own waiter polls every 30 s for up to 60 attempts and exits 255 on timeout.
    local cmd = { "aws", "rds", "wait", "db-snapshot-available", "--db-snapshot-identifier", id }
    if ctx.vars and ctx.vars.region then cmd[#cmd + 1] = "--region"; cmd[#cmd + 1] = ctx.vars.region end
    local r = dbflow.exec(cmd)
    if r.code ~= 0 then error("snapshot " .. id .. " did not become available: " .. (r.stderr or "")) end
    return id
  end,

  list = function(ctx)
    local doc = aws(ctx, { "describe-db-snapshots", "--db-instance-identifier", base(ctx) })
    local out = {}
    for _, s in ipairs(doc.DBSnapshots or {}) do
      out[#out + 1] = { id = s.DBSnapshotIdentifier, created_at = s.SnapshotCreateTime, status = s.Status, size_gb = s.AllocatedStorage, kind = s.SnapshotType }
    end
    return out
  end,

  restore = function(ctx, id, opts)
    local target = opts.target or (base(ctx) .. "-restore-" .. os.date("!%Y%m%d%H%M%S"))
    local args = { "restore-db-instance-from-db-snapshot", "--db-instance-identifier", target, "--db-snapshot-identifier", id }
    local class = opts.instance_class or (ctx.vars and ctx.vars.restore_instance_class)
    if class then args[#args + 1] = "--db-instance-class"; args[#args + 1] = class end
    local doc = aws(ctx, args)
    local inst = doc.DBInstance or error("aws_rds: restore answered without DBInstance")
    return { instance = inst.DBInstanceIdentifier, status = inst.DBInstanceStatus }
  end,

  delete = function(ctx, id)
    local doc = aws(ctx, { "delete-db-snapshot", "--db-snapshot-identifier", id })
    return { id = doc.DBSnapshot and doc.DBSnapshot.DBSnapshotIdentifier or id, status = doc.DBSnapshot and doc.DBSnapshot.Status }
  end,
}
