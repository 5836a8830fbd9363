-- Google Cloud SQL for PostgreSQL: on-demand backups through gcloud.
-- Environment vars used: cloudsql_instance (required), gcp_project (optional),
-- restore_instance (the existing instance a restore overwrites; default <instance>-restore).

local function instance(ctx)
  local i = ctx.vars and ctx.vars.cloudsql_instance
  if not i or i == "" then error("gcp_cloudsql: set vars.cloudsql_instance on environment `" .. tostring(ctx.env) .. "`") end
  return i
end

local function gcloud(ctx, args, want_json)
  local cmd = { "gcloud", "sql" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  if ctx.vars and ctx.vars.gcp_project then cmd[#cmd + 1] = "--project=" .. ctx.vars.gcp_project end
  if want_json then cmd[#cmd + 1] = "--format=json" end
  local r = dbflow.exec(cmd)
  if r.code ~= 0 then error("gcloud sql " .. args[1] .. " " .. args[2] .. " failed (exit " .. r.code .. "): " .. (r.stderr or "")) end
  if not want_json or r.stdout:match("^%s*$") then return {} end
  local ok, doc = pcall(dbflow.json.decode, r.stdout)
  if not ok then error("gcloud sql " .. args[1] .. " " .. args[2] .. " returned malformed JSON: " .. tostring(doc)) end
  return doc
end

return {
  manual = {
    snapshot = "gcloud sql backups create --instance=$INSTANCE --async",
    wait = "gcloud sql backups describe $BACKUP_ID --instance=$INSTANCE",
    list = "gcloud sql backups list --instance=$INSTANCE",
    restore = "gcloud sql backups restore $BACKUP_ID --restore-instance=$TARGET --backup-instance=$INSTANCE",
    delete = "gcloud sql backups delete $BACKUP_ID --instance=$INSTANCE",
  },

  snapshot = function(ctx, opts)
    local desc = opts.description or ("dbflow " .. tostring(ctx.env) .. " run " .. tostring(ctx.run_id))
    local op = gcloud(ctx, { "backups", "create", "--instance=" .. instance(ctx), "--description=" .. desc, "--async" }, true)
    local id = op.backupContext and op.backupContext.backupId
    if not id then error("gcp_cloudsql: the backup operation did not name its backup (no backupContext.backupId)") end
    return tostring(id)
  end,

  wait = function(ctx, id)
    for _ = 1, 360 do
      local b = gcloud(ctx, { "backups", "describe", id, "--instance=" .. instance(ctx) }, true)
      if b.status == "SUCCESSFUL" then return id end
      if b.status == "FAILED" or b.status == "DELETED" then error("backup " .. id .. " is " .. b.status) end
      dbflow.sleep(10)
    end
    error("backup " .. id .. " still not SUCCESSFUL after an hour")
  end,

  list = function(ctx)
    local out = {}
    for _, b in ipairs(gcloud(ctx, { "backups", "list", "--instance=" .. instance(ctx) }, true)) do
      out[#out + 1] = { id = tostring(b.id), created_at = b.windowStartTime, status = b.status, kind = b.type, description = b.description }
    end
    return out
  end,

  restore = function(ctx, id, opts)
    local target = opts.target or (ctx.vars and ctx.vars.restore_instance) or (instance(ctx) .. "-restore")
    gcloud(ctx, { "backups", "restore", id, "--restore-instance=" .. target, "--backup-instance=" .. instance(ctx), "--quiet" }, true)
    return { instance = target }
  end,

  delete = function(ctx, id)
    gcloud(ctx, { "backups", "delete", id, "--instance=" .. instance(ctx), "--quiet" }, false)
    return { id = id }
  end,
}
