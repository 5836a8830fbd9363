-- A docker compose stack on one host: pg_dump inside the postgres service into its
-- /backups volume (mounted from ./backups/<env> by the generated compose override), and
-- `docker compose stop app` to stop writes. Environment vars used (all optional):
-- compose_db_service (postgres), compose_app_service (app), db_user (postgres).

local function svc(ctx) return (ctx.vars and ctx.vars.compose_db_service) or "postgres" end
local function app(ctx) return (ctx.vars and ctx.vars.compose_app_service) or "app" end
local function user(ctx) return (ctx.vars and ctx.vars.db_user) or "postgres" end

local function compose(args)
  local cmd = { "docker", "compose" }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  local r = dbflow.exec(cmd)
  if r.code ~= 0 then error("docker compose " .. table.concat(args, " ") .. " failed (exit " .. r.code .. "): " .. (r.stderr or "")) end
  return r.stdout
end

local function in_db(ctx, args)
  local cmd = { "exec", "-T", svc(ctx) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = a end
  return compose(cmd)
end

return {
  manual = {
    snapshot = "docker compose exec -T postgres pg_dump --format=custom --username=postgres --file=/backups/$ID.dump $DB",
    wait = "docker compose exec -T postgres pg_restore --list /backups/$ID.dump",
    list = "docker compose exec -T postgres ls -1 /backups",
    restore = "docker compose exec -T postgres createdb --username=postgres $TARGET && docker compose exec -T postgres pg_restore --no-owner --username=postgres --dbname=$TARGET /backups/$ID.dump",
    delete = "docker compose exec -T postgres rm /backups/$ID.dump",
    stop_writes = "docker compose stop app",
    resume_writes = "docker compose start app",
  },

  snapshot = function(ctx, opts)
    local db = opts.database or ctx.database or error("compose: the environment's URL names no database")
    local id = opts.id or ("compose-" .. tostring(ctx.env) .. "-" .. os.date("!%Y%m%d%H%M%S"))
    in_db(ctx, { "pg_dump", "--format=custom", "--username=" .. user(ctx), "--file=/backups/" .. id .. ".dump", db })
    return id
  end,

  wait = function(ctx, id)
    -- pg_dump ran synchronously; prove the archive is readable.
    in_db(ctx, { "pg_restore", "--list", "/backups/" .. id .. ".dump" })
    return id
  end,

  list = function(ctx)
    local out = {}
    for name in in_db(ctx, { "ls", "-1", "/backups" }):gmatch("[^\n]+") do
      local id = name:match("^(.*)%.dump$")
      if id then out[#out + 1] = { id = id } end
    end
    return out
  end,

  restore = function(ctx, id, opts)
    local target = opts.target or ((ctx.database or "db") .. "_restore_" .. os.date("!%Y%m%d%H%M%S"))
    in_db(ctx, { "createdb", "--username=" .. user(ctx), target })
    in_db(ctx, { "pg_restore", "--no-owner", "--username=" .. user(ctx), "--dbname=" .. target, "/backups/" .. id .. ".dump" })
    return { database = target }
  end,

  delete = function(ctx, id)
    in_db(ctx, { "rm", "/backups/" .. id .. ".dump" })
    return { id = id }
  end,

  stop_writes = function(ctx)
    compose({ "stop", app(ctx) })
  end,

  resume_writes = function(ctx)
    compose({ "start", app(ctx) })
  end,
}
