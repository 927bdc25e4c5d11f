from django.contrib import admin
from django.urls import include, path

from timer.web import cluster_views, health_views, metrics_views
from timer.web import page_views as views

urlpatterns = [
    path("", views.index, name="index"),
    path("healthcheck", health_views.healthcheck, name="healthcheck"),
    path("livez", health_views.livez, name="livez"),
    path("metrics", metrics_views.metrics, name="metrics"),
    path("admin/cluster/", include(cluster_views.urlpatterns)),
    path("admin/", admin.site.urls),
]
