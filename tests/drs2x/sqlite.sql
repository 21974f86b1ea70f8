BEGIN TRANSACTION;
CREATE TABLE "auth_group" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(80) NOT NULL UNIQUE);
CREATE TABLE "auth_group_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "content_type_id" integer NOT NULL REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED, "codename" varchar(100) NOT NULL, "name" varchar(255) NOT NULL);
INSERT INTO "auth_permission" VALUES(1,1,'add_logentry','Can add log entry');
INSERT INTO "auth_permission" VALUES(2,1,'change_logentry','Can change log entry');
INSERT INTO "auth_permission" VALUES(3,1,'delete_logentry','Can delete log entry');
INSERT INTO "auth_permission" VALUES(4,2,'add_permission','Can add permission');
INSERT INTO "auth_permission" VALUES(5,2,'change_permission','Can change permission');
INSERT INTO "auth_permission" VALUES(6,2,'delete_permission','Can delete permission');
INSERT INTO "auth_permission" VALUES(7,3,'add_group','Can add group');
INSERT INTO "auth_permission" VALUES(8,3,'change_group','Can change group');
INSERT INTO "auth_permission" VALUES(9,3,'delete_group','Can delete group');
INSERT INTO "auth_permission" VALUES(10,4,'add_user','Can add user');
INSERT INTO "auth_permission" VALUES(11,4,'change_user','Can change user');
INSERT INTO "auth_permission" VALUES(12,4,'delete_user','Can delete user');
INSERT INTO "auth_permission" VALUES(13,5,'add_contenttype','Can add content type');
INSERT INTO "auth_permission" VALUES(14,5,'change_contenttype','Can change content type');
INSERT INTO "auth_permission" VALUES(15,5,'delete_contenttype','Can delete content type');
INSERT INTO "auth_permission" VALUES(16,6,'add_session','Can add session');
INSERT INTO "auth_permission" VALUES(17,6,'change_session','Can change session');
INSERT INTO "auth_permission" VALUES(18,6,'delete_session','Can delete session');
INSERT INTO "auth_permission" VALUES(19,7,'add_interpreter','Can add interpreter');
INSERT INTO "auth_permission" VALUES(20,7,'change_interpreter','Can change interpreter');
INSERT INTO "auth_permission" VALUES(21,7,'delete_interpreter','Can delete interpreter');
INSERT INTO "auth_permission" VALUES(22,8,'add_job','Can add job');
INSERT INTO "auth_permission" VALUES(23,8,'change_job','Can change job');
INSERT INTO "auth_permission" VALUES(24,8,'delete_job','Can delete job');
INSERT INTO "auth_permission" VALUES(25,9,'add_log','Can add log');
INSERT INTO "auth_permission" VALUES(26,9,'change_log','Can change log');
INSERT INTO "auth_permission" VALUES(27,9,'delete_log','Can delete log');
INSERT INTO "auth_permission" VALUES(28,10,'add_result','Can add result');
INSERT INTO "auth_permission" VALUES(29,10,'change_result','Can change result');
INSERT INTO "auth_permission" VALUES(30,10,'delete_result','Can delete result');
INSERT INTO "auth_permission" VALUES(31,11,'add_server','Can add server');
INSERT INTO "auth_permission" VALUES(32,11,'change_server','Can change server');
INSERT INTO "auth_permission" VALUES(33,11,'delete_server','Can delete server');
CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "first_name" varchar(30) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "is_active" bool NOT NULL, "date_joined" datetime NOT NULL, "last_name" varchar(150) NOT NULL);
INSERT INTO "auth_user" VALUES(1,'pbkdf2_sha256$100000$BPs9y3qg7LwO$xkQKFoaiVsUixO7KCuMx2dfHZj3H3KSSJzr0HSumMus=',NULL,1,'alice','','alice@example.org',1,1,'2026-12-03 18:01:06.115496','');
INSERT INTO "auth_user" VALUES(2,'pbkdf2_sha256$100000$8WKPT3A9vDNf$Ye2QwQ6LdMeIqRn2yZDLyoB51Bp/pp4ixYZY/gONXX4=',NULL,0,'bob','','bob@example.org',0,1,'2026-12-03 18:01:06.254668','');
CREATE TABLE "auth_user_groups" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "group_id" integer NOT NULL REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE "auth_user_user_permissions" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "permission_id" integer NOT NULL REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE "django_admin_log" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "object_id" text NULL, "object_repr" varchar(200) NOT NULL, "action_flag" smallint unsigned NOT NULL, "change_message" text NOT NULL, "content_type_id" integer NULL REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "action_time" datetime NOT NULL);
CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
INSERT INTO "django_content_type" VALUES(1,'admin','logentry');
INSERT INTO "django_content_type" VALUES(2,'auth','permission');
INSERT INTO "django_content_type" VALUES(3,'auth','group');
INSERT INTO "django_content_type" VALUES(4,'auth','user');
INSERT INTO "django_content_type" VALUES(5,'contenttypes','contenttype');
INSERT INTO "django_content_type" VALUES(6,'sessions','session');
INSERT INTO "django_content_type" VALUES(7,'django_remote_submission','interpreter');
INSERT INTO "django_content_type" VALUES(8,'django_remote_submission','job');
INSERT INTO "django_content_type" VALUES(9,'django_remote_submission','log');
INSERT INTO "django_content_type" VALUES(10,'django_remote_submission','result');
INSERT INTO "django_content_type" VALUES(11,'django_remote_submission','server');
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
INSERT INTO "django_migrations" VALUES(1,'contenttypes','0001_initial','2026-12-03 18:01:05.761028');
INSERT INTO "django_migrations" VALUES(2,'auth','0001_initial','2026-12-03 18:01:05.780183');
INSERT INTO "django_migrations" VALUES(3,'admin','0001_initial','2026-12-03 18:01:05.791939');
INSERT INTO "django_migrations" VALUES(4,'admin','0002_logentry_remove_auto_add','2026-12-03 18:01:05.815838');
INSERT INTO "django_migrations" VALUES(5,'contenttypes','0002_remove_content_type_name','2026-12-03 18:01:05.838976');
INSERT INTO "django_migrations" VALUES(6,'auth','0002_alter_permission_name_max_length','2026-12-03 18:01:05.853635');
INSERT INTO "django_migrations" VALUES(7,'auth','0003_alter_user_email_max_length','2026-12-03 18:01:05.871246');
INSERT INTO "django_migrations" VALUES(8,'auth','0004_alter_user_username_opts','2026-12-03 18:01:05.889683');
INSERT INTO "django_migrations" VALUES(9,'auth','0005_alter_user_last_login_null','2026-12-03 18:01:05.910759');
INSERT INTO "django_migrations" VALUES(10,'auth','0006_require_contenttypes_0002','2026-12-03 18:01:05.913063');
INSERT INTO "django_migrations" VALUES(11,'auth','0007_alter_validators_add_error_messages','2026-12-03 18:01:05.928674');
INSERT INTO "django_migrations" VALUES(12,'auth','0008_alter_user_username_max_length','2026-12-03 18:01:05.943770');
INSERT INTO "django_migrations" VALUES(13,'auth','0009_alter_user_last_name_max_length','2026-12-03 18:01:05.959597');
INSERT INTO "django_migrations" VALUES(14,'django_remote_submission','0001_initial','2026-12-03 18:01:06.026776');
INSERT INTO "django_migrations" VALUES(15,'sessions','0001_initial','2026-12-03 18:01:06.035646');
CREATE TABLE "django_remote_submission_interpreter" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "created" datetime NOT NULL, "modified" datetime NOT NULL, "name" varchar(100) NOT NULL, "path" varchar(256) NOT NULL, "arguments" text NOT NULL);
INSERT INTO "django_remote_submission_interpreter" VALUES(1,'2026-12-03 18:01:06.394997','2026-12-03 18:01:06.394997','Python 3','/tmp/v2/bin/python','[''-u'']');
INSERT INTO "django_remote_submission_interpreter" VALUES(2,'2026-12-03 18:01:06.409045','2026-12-03 18:01:06.409045','Bash','/bin/bash','[]');
INSERT INTO "django_remote_submission_interpreter" VALUES(3,'2026-12-03 18:01:06.411884','2026-12-03 18:01:06.411884','Python, quoted arguments','/tmp/v2/bin/python','[''-W'', ''ignore::DeprecationWarning'', ''-c'', ''import sys; print("it\''s", \''a \\\''quote\\\''\'', sys.argv[1:])'']');
CREATE TABLE "django_remote_submission_job" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "created" datetime NOT NULL, "modified" datetime NOT NULL, "title" varchar(250) NOT NULL, "uuid" char(32) NOT NULL, "program" text NOT NULL, "status" varchar(100) NOT NULL, "remote_directory" varchar(250) NOT NULL, "remote_filename" varchar(250) NOT NULL, "interpreter_id" integer NOT NULL REFERENCES "django_remote_submission_interpreter" ("id") DEFERRABLE INITIALLY DEFERRED, "owner_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "server_id" integer NOT NULL REFERENCES "django_remote_submission_server" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "django_remote_submission_job" VALUES(1,'2026-12-03 18:01:06.437339','2026-12-03 18:01:07.508082','Reduce run 1 – café','ec6acbc0b9fd4e8296af773d26d26fe2','import sys
for i in range(1, 6):
    print(''line'', i, ''éè'')
print(''warning 1'', file=sys.stderr)
open(''out_1.txt'', ''w'').write(''first result\n'')
open(''table.csv'', ''w'').write(''a,b\n1,2\n'')
','success','/tmp/drs2x-jobs/ok','run.py',1,1,1);
INSERT INTO "django_remote_submission_job" VALUES(2,'2026-12-03 18:01:07.522078','2026-12-03 18:01:08.552787','Fails','a9b40991bef54f9f9e84f2778985e499','echo before
echo oops >&2
exit 3
','failure','/tmp/drs2x-jobs/bad','run.sh',2,2,1);
INSERT INTO "django_remote_submission_job" VALUES(3,'2026-12-03 18:01:08.556288','2026-12-03 18:01:09.616534','Arguments','5de4b483a9b44fc6b6ffcbda971ebd22','import sys
print(sys.argv)
','success','/tmp/drs2x-jobs/args','run.py',3,1,1);
INSERT INTO "django_remote_submission_job" VALUES(4,'2026-12-03 18:01:09.621934','2026-12-03 18:01:09.625176','Stuck','ed1bbc07593a45fcb68c865e61a5835f','import time
time.sleep(1000)
','submitted','/tmp/drs2x-jobs','run.py',1,2,2);
INSERT INTO "django_remote_submission_job" VALUES(5,'2026-12-03 18:01:09.630286','2026-12-03 18:01:09.630286','Not yet','f897606ff4324c3db590b7235b664792','print(''later'')
','initial','/tmp/drs2x-jobs','run.py',1,1,2);
CREATE TABLE "django_remote_submission_log" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "time" datetime NOT NULL, "content" text NOT NULL, "stream" varchar(6) NOT NULL, "job_id" integer NOT NULL REFERENCES "django_remote_submission_job" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "django_remote_submission_log" VALUES(1,'2026-12-03 18:01:07.489366','line 1 éè
','stdout',1);
INSERT INTO "django_remote_submission_log" VALUES(2,'2026-12-03 18:01:07.493994','line 2 éè
','stdout',1);
INSERT INTO "django_remote_submission_log" VALUES(3,'2026-12-03 18:01:07.497503','line 3 éè
','stdout',1);
INSERT INTO "django_remote_submission_log" VALUES(4,'2026-12-03 18:01:07.500155','line 4 éè
','stdout',1);
INSERT INTO "django_remote_submission_log" VALUES(5,'2026-12-03 18:01:07.503083','line 5 éè
','stdout',1);
INSERT INTO "django_remote_submission_log" VALUES(6,'2026-12-03 18:01:07.505508','warning 1
','stderr',1);
INSERT INTO "django_remote_submission_log" VALUES(7,'2026-12-03 18:01:08.545471','before
','stdout',2);
INSERT INTO "django_remote_submission_log" VALUES(8,'2026-12-03 18:01:08.545537','oops
','stderr',2);
INSERT INTO "django_remote_submission_log" VALUES(9,'2026-12-03 18:01:09.611165','it''s a ''quote'' [''run.py'']
','stdout',3);
INSERT INTO "django_remote_submission_log" VALUES(10,'2026-12-03 18:01:09.627707','started
','stdout',4);
CREATE TABLE "django_remote_submission_result" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "created" datetime NOT NULL, "modified" datetime NOT NULL, "remote_filename" text NOT NULL, "local_file" varchar(250) NOT NULL, "job_id" integer NOT NULL REFERENCES "django_remote_submission_job" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "django_remote_submission_result" VALUES(1,'2026-12-03 18:01:07.512185','2026-12-03 18:01:07.515665','table.csv','results/ec6acbc0-b9fd-4e82-96af-773d26d26fe2/table.csv',1);
INSERT INTO "django_remote_submission_result" VALUES(2,'2026-12-03 18:01:07.517824','2026-12-03 18:01:07.520147','out_1.txt','results/ec6acbc0-b9fd-4e82-96af-773d26d26fe2/out_1.txt',1);
CREATE TABLE "django_remote_submission_server" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "created" datetime NOT NULL, "modified" datetime NOT NULL, "title" varchar(100) NOT NULL, "hostname" varchar(100) NOT NULL, "port" integer NOT NULL);
INSERT INTO "django_remote_submission_server" VALUES(1,'2026-12-03 18:01:06.414619','2026-12-03 18:01:06.414619','Local','localhost',22);
INSERT INTO "django_remote_submission_server" VALUES(2,'2026-12-03 18:01:06.422075','2026-12-03 18:01:06.422075','Cluster','login.cluster.example.org',2222);
CREATE TABLE "django_remote_submission_server_interpreters" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "server_id" integer NOT NULL REFERENCES "django_remote_submission_server" ("id") DEFERRABLE INITIALLY DEFERRED, "interpreter_id" integer NOT NULL REFERENCES "django_remote_submission_interpreter" ("id") DEFERRABLE INITIALLY DEFERRED);
INSERT INTO "django_remote_submission_server_interpreters" VALUES(1,1,1);
INSERT INTO "django_remote_submission_server_interpreters" VALUES(2,1,2);
INSERT INTO "django_remote_submission_server_interpreters" VALUES(3,1,3);
INSERT INTO "django_remote_submission_server_interpreters" VALUES(4,2,1);
CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('django_migrations',15);
INSERT INTO "sqlite_sequence" VALUES('django_admin_log',0);
INSERT INTO "sqlite_sequence" VALUES('django_content_type',11);
INSERT INTO "sqlite_sequence" VALUES('auth_permission',33);
INSERT INTO "sqlite_sequence" VALUES('auth_user',2);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_job',5);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_interpreter',3);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_server',2);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_server_interpreters',4);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_log',10);
INSERT INTO "sqlite_sequence" VALUES('django_remote_submission_result',2);
CREATE UNIQUE INDEX auth_group_permissions_group_id_permission_id_0cd325b0_uniq ON "auth_group_permissions" ("group_id", "permission_id");
CREATE INDEX "auth_group_permissions_group_id_b120cbf9" ON "auth_group_permissions" ("group_id");
CREATE INDEX "auth_group_permissions_permission_id_84c5c92e" ON "auth_group_permissions" ("permission_id");
CREATE UNIQUE INDEX auth_user_groups_user_id_group_id_94350c0c_uniq ON "auth_user_groups" ("user_id", "group_id");
CREATE INDEX "auth_user_groups_user_id_6a12ed8b" ON "auth_user_groups" ("user_id");
CREATE INDEX "auth_user_groups_group_id_97559544" ON "auth_user_groups" ("group_id");
CREATE UNIQUE INDEX auth_user_user_permissions_user_id_permission_id_14a6b632_uniq ON "auth_user_user_permissions" ("user_id", "permission_id");
CREATE INDEX "auth_user_user_permissions_user_id_a95ead1b" ON "auth_user_user_permissions" ("user_id");
CREATE INDEX "auth_user_user_permissions_permission_id_1fbb5f2c" ON "auth_user_user_permissions" ("permission_id");
CREATE INDEX "django_admin_log_content_type_id_c4bce8eb" ON "django_admin_log" ("content_type_id");
CREATE INDEX "django_admin_log_user_id_c564eba6" ON "django_admin_log" ("user_id");
CREATE UNIQUE INDEX django_content_type_app_label_model_76bd3d3b_uniq ON "django_content_type" ("app_label", "model");
CREATE UNIQUE INDEX auth_permission_content_type_id_codename_01ab375a_uniq ON "auth_permission" ("content_type_id", "codename");
CREATE INDEX "auth_permission_content_type_id_2f476e4b" ON "auth_permission" ("content_type_id");
CREATE INDEX "django_remote_submission_log_job_id_945f8779" ON "django_remote_submission_log" ("job_id");
CREATE INDEX "django_remote_submission_result_job_id_96fae358" ON "django_remote_submission_result" ("job_id");
CREATE UNIQUE INDEX django_remote_submission_server_interpreters_server_id_interpreter_id_4a71a0af_uniq ON "django_remote_submission_server_interpreters" ("server_id", "interpreter_id");
CREATE INDEX "django_remote_submission_server_interpreters_server_id_37e4c41a" ON "django_remote_submission_server_interpreters" ("server_id");
CREATE INDEX "django_remote_submission_server_interpreters_interpreter_id_30a905e4" ON "django_remote_submission_server_interpreters" ("interpreter_id");
CREATE INDEX "django_remote_submission_job_interpreter_id_5bc15e1f" ON "django_remote_submission_job" ("interpreter_id");
CREATE INDEX "django_remote_submission_job_owner_id_0daa48cc" ON "django_remote_submission_job" ("owner_id");
CREATE INDEX "django_remote_submission_job_server_id_71d49d34" ON "django_remote_submission_job" ("server_id");
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");
COMMIT;
