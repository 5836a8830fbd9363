-- Partial rollback of 20240320101500_user_nickname
ALTER TABLE "User" DROP COLUMN "nickname";
